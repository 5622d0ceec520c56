"""Secrets never printed (issue 10, finding 6): URLs taken apart by a parser, then masked."""

from __future__ import annotations

import pytest

from graph.redaction import redact_text, redact_url
from graph.storage.errors import RedisUnavailableError


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://bob:hunter2@h:6379/0", "redis://bob:***@h:6379/0"),
        ("redis://bob:hunt@er2@h:6379/0", "redis://bob:***@h:6379/0"),  # `@` in the password
        ("redis://bob:hu/nt#er?2@h/0", "redis://bob:***@h/0"),  # `/`, `#`, `?` unencoded
        ("rediss://tok3n-as-username@h:6380", "rediss://***@h:6380"),
        ("redis://h:6379/0?password=hunter2&db=2", "redis://h:6379/0?password=***&db=2"),
        (
            "redis://h/0?username=bob&password=x&ssl_cert_reqs=none",
            "redis://h/0?username=***&password=***&ssl_cert_reqs=none",
        ),
        ("unix:///run/valkey.sock?db=0", "unix:///run/valkey.sock?db=0"),
        ("https://h:8443/q?mail=a@b", "https://h:8443/q?mail=***"),  # not userinfo: a query
        ("https://h/users/@me", "https://h/users/@me"),  # not userinfo: a path
        ("redis://h:6379", "redis://h:6379"),
    ],
)
def test_urls_are_shown_without_their_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_text_quoting_a_url_is_scrubbed_too() -> None:
    url = "redis://bob:hunt@er2@h:99999/0?password=s3cr3t"
    error = RedisUnavailableError(url, ValueError("Port could not be cast: 'hunt@er2@h:99999'"))
    message = str(error)
    assert "hunt" not in message and "er2" not in message and "s3cr3t" not in message
    assert message.startswith("Redis at redis://bob:***@h:99999/0?password=*** is unreachable")
    assert redact_text("token abc123 used", "redis://abc123@h") == "token *** used"
