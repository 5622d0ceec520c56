"""`redis+cluster://` URLs: parsed into nodes and credentials, refused with a reason."""

from __future__ import annotations

import pytest

from graph.storage.cluster import is_cluster_url, parse_cluster_url
from graph.storage.url import check_redis_url


def test_a_cluster_url_names_its_nodes_and_credentials() -> None:
    parsed = parse_cluster_url("redis+cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001/0")
    assert parsed.nodes == [("10.0.0.1", 7000), ("::1", 7001)]
    assert (parsed.username, parsed.password) == ("app", "s@cret")
    assert parse_cluster_url("redis+cluster://h:7000").nodes == [("h", 7000)]
    assert is_cluster_url("REDIS+CLUSTER://h:1") and not is_cluster_url("redis://h:1")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+cluster://h", "host:port"),
        ("redis+cluster://h:1,h2", "host:port"),
        ("redis+cluster://h:99999", "host:port"),
        ("redis+cluster://h:1/2", "database 0 only"),
        ("redis+cluster://h:1/?x=1", "no query"),
    ],
)
def test_a_bad_cluster_url_says_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_cluster_url(url)


def test_a_malformed_cluster_url_is_reported_without_its_password() -> None:
    with pytest.raises(ValueError, match="malformed Redis URL") as caught:
        check_redis_url("redis+cluster://app:topsecret@h")
    assert "topsecret" not in str(caught.value)
    check_redis_url("redis+cluster://app:topsecret@h:7000,h2:7001")  # well formed: no error
