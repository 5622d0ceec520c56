"""Whether a Redis URL can be used, said without the URL (it may hold a password).

`REDIS_URL` is checked when the settings are read, so a malformed one is reported as
malformed (a bad setting), never as a Redis that could not be reached.
"""

from __future__ import annotations

from redis.connection import parse_url

from graph.redaction import redact_text
from graph.storage.cluster import is_cluster_url, parse_cluster_url
from graph.storage.sentinel import is_sentinel_url, parse_sentinel_url

SCHEMES = ("redis", "rediss", "unix")
FORMS = (
    "redis://host:port/db, rediss://…, unix:///path/to/socket, redis+sentinel://… "
    "or redis+cluster://host:port,…"
)


def check_redis_url(url: str) -> None:
    """Raise ValueError saying what is wrong with `url`, with its secrets masked."""
    try:
        if is_sentinel_url(url):
            parse_sentinel_url(url)
            return
        if is_cluster_url(url):
            parse_cluster_url(url)
            return
        scheme, separator, _ = url.partition("://")
        if not separator or scheme.lower() not in SCHEMES:
            raise ValueError(f"it must have the form {FORMS}")
        parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    except ValueError as exc:
        raise ValueError(f"malformed Redis URL: {redact_text(str(exc), url)}") from None
