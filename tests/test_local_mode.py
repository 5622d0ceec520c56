"""Local mode's rules (issue 10, finding 2), as functions: loopback names, the bind check."""

from __future__ import annotations

import pytest

from api.local_mode import check_bind, is_loopback
from api.settings import ServerConfigError, ServerSettings, digest


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
    ],
)
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",
        "::",
        "",
        None,
        "192.168.1.5",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "evil.example",
        "127.1",
        "::ffff:10.0.0.1",
    ],
)
def test_everything_else_is_not(host: str | None) -> None:
    assert not is_loopback(host)


def test_binding_beyond_loopback_needs_keys() -> None:
    open_access = ServerSettings()
    with pytest.raises(ServerConfigError, match=r"refusing to serve on 0\.0\.0\.0"):
        check_bind(open_access, ["0.0.0.0"])
    check_bind(open_access, ["127.0.0.1"])
    check_bind(open_access, None)  # not uvicorn: each request is checked instead
    check_bind(ServerSettings(api_keys={digest("k"): "acme"}), ["0.0.0.0"])
