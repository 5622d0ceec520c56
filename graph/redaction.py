"""Secrets out of what we print: URLs without passwords, tokens or secret query values.

A URL in an error message, a log line or a CLI message may carry credentials: a password
in its userinfo (even one holding `@`), a username that is really a token
(`redis://<token>@host`), or query parameters such as `?password=` or `?api_key=`. The URL
is taken apart with `urllib.parse`; userinfo is replaced by `***` and every query value by
`***` unless its name is a harmless option (`db`, `ssl_cert_reqs`, ...).
`redact_text` also scrubs those secrets from text that quotes the URL (an exception).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote

__all__ = ["redact_text", "redact_url", "redact_urls"]

MASK = "***"
_DELIMITERS = frozenset("/?#")
_PORT_THEN_PATH = re.compile(r"\d*[/?#]")
# Query options that are never secrets (redis-py's URL options, and common ones).
HARMLESS_QUERY = frozenset(
    {
        "db",
        "decode_responses",
        "encoding",
        "health_check_interval",
        "max_connections",
        "protocol",
        "retry_on_timeout",
        "single_connection_client",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_timeout",
        "ssl",
        "ssl_cert_reqs",
        "ssl_check_hostname",
        "timeout",
    }
)


def _split(url: str) -> tuple[str, str | None, str]:
    """(scheme, userinfo or None, the rest after it) of a URL, leaning to finding userinfo.

    The last `@` ends the userinfo even past a `/`, `?` or `#`: a password may hold those
    unencoded (`redis://u:p/ss@host`), which a strict parser reads as a path or query, and
    prints. It is userinfo when it looks like one: `user:password` (a user name without
    `/?#`, and after the colon not a port followed by a path), or a token with none of `/?#:`.
    So `https://h/users/@me` and `https://h:8443/q?mail=a@b` keep their `@`.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", None, url
    userinfo, at, after = rest.rpartition("@")
    if not at:
        return scheme, None, rest
    user, colon, password = userinfo.partition(":")
    if colon:
        looks_like = not _DELIMITERS.intersection(user) and not _PORT_THEN_PATH.match(password)
    else:
        looks_like = not _DELIMITERS.intersection(userinfo)
    return (scheme, userinfo, after) if looks_like else (scheme, None, rest)


def redact_url(url: str | None) -> str:
    """The URL with its userinfo and secret query values replaced by `***`."""
    if not url:
        return ""
    scheme, userinfo, rest = _split(url)
    if not scheme:
        return MASK if "@" in url or "=" in url else url  # not a URL: show nothing secret
    where, _, query = rest.split("#", 1)[0].partition("?")
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        # A password is hidden; a username alone may be a token: hidden too.
        where = f"{user}:{MASK}@{where}" if colon else f"{MASK}@{where}"
    if query:
        query = "&".join(
            f"{quote(name, safe='')}={value if name.lower() in HARMLESS_QUERY else MASK}"
            for name, value in parse_qsl(query, keep_blank_values=True)
        )
        return f"{scheme}://{where}?{query}"
    return f"{scheme}://{where}"


def secrets_in(url: str | None) -> list[str]:
    """The secret parts of a URL as they may appear in text (raw and percent-decoded)."""
    if not url:
        return []
    scheme, userinfo, rest = _split(url)
    if not scheme:
        return [url]
    found: list[str] = []
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        found += [password] if colon else [user]
    query = rest.split("#", 1)[0].partition("?")[2]
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() not in HARMLESS_QUERY:
            found.append(value)
    raw = [s for s in found if s]
    return sorted({*raw, *(unquote(s) for s in raw)}, key=len, reverse=True)


def redact_text(text: str, url: str | None) -> str:
    """`text` (e.g. an exception's message) with the URL's secrets replaced by `***`."""
    for secret in secrets_in(url):
        text = text.replace(secret, MASK)
    return text


# A URL written into text: a scheme, `://`, then up to a blank, a quote or a bracket.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s\"'<>\])]+")


def redact_urls(text: str) -> str:
    """`text` with every URL in it redacted (`redact_url`): for text that may quote URLs
    nobody configured, such as an HTTP client's error or log line about a plan's URL."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
