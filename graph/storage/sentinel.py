"""`REDIS_URL` naming Redis Sentinels: the client follows the primary through a failover.

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]

The hosts are the sentinels; `service_name` is the monitored primary's name (`sentinel
monitor <name> ...`); the user and password, if any, are the data servers' (the sentinels
are asked without). redis-py asks the sentinels where the primary is when it connects
(`redis.asyncio.sentinel.SentinelConnectionPool`), and again after a connection to it
fails, so a client carries on on the new primary once the sentinels have promoted one; the
commands in between fail with ConnectionError, which the checkpointer's callers wait out
(`graph.storage.outage`). redis-py parses no sentinel URL, hence `parse_sentinel_url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelURL:
    sentinels: list[tuple[str, int]]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(f"{SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a `redis+sentinel://` URL; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for host_port in hosts.split(","):
        host, colon, port = host_port.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"a sentinel must be host:port, not {host_port.strip()!r}")
        sentinels.append((host.strip("[]"), int(port)))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /service_name or /service_name/db")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"the database must be a number, not {path[1]!r}")
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    db = int(path[1]) if len(path) == 2 else 0
    return SentinelURL(sentinels, path[0], db, username, password)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The primary's connections, bounded, waiting for a free one (as `make_client`'s)."""


def sentinel_client(url: str, **connection: Any) -> aioredis.Redis:
    """A client of the primary the URL's sentinels name; `connection` as for a pool
    (timeouts, retry, max_connections, timeout), used for the sentinels too (timeouts)."""
    parsed = parse_sentinel_url(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        parsed.sentinels,
        sentinel_kwargs={k: v for k, v in connection.items() if k.startswith("socket_")},
    )
    client: aioredis.Redis = sentinel.master_for(
        parsed.service_name,
        connection_pool_class=_BlockingSentinelPool,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **connection,
    )
    return client
