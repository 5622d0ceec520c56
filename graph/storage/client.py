"""The Redis client the storage uses: short timeouts, a bounded pool that waits, Sentinel.

A server that is down must be reported in seconds, never hang a run.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from graph.storage.sentinel import is_sentinel_url, sentinel_client

__all__ = ["CONNECT_TIMEOUT_S", "MAX_CONNECTIONS", "READ_TIMEOUT_S", "make_client"]

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64


def make_client(url: str) -> aioredis.Redis:
    """An asyncio Redis client with timeouts and a short retry, so nothing hangs.

    Its pool is bounded and *waits* for a free connection (up to the read timeout) rather
    than failing: a burst of requests (200 SSE clients connecting at once) queues for a
    moment instead of getting "Too many connections". A `redis+sentinel://` URL gives a
    client of the sentinels' primary, which follows it through a failover
    (`graph.storage.sentinel`).
    """
    options: dict[str, Any] = {
        "max_connections": MAX_CONNECTIONS,
        "timeout": READ_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": READ_TIMEOUT_S,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        "decode_responses": False,
    }
    if is_sentinel_url(url):
        return sentinel_client(url, **options)
    return aioredis.Redis.from_pool(BlockingConnectionPool.from_url(url, **options))
