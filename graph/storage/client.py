"""The Redis client the storage uses: short timeouts, a bounded pool that waits, Sentinel,
Cluster.

A server that is down must be reported in seconds, never hang a run. And one quirk of
redis-py's to live with: a cancellation can be lost inside a read (`cancel_and_wait`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from graph.storage.cluster import cluster_client as _cluster_client
from graph.storage.cluster import is_cluster_url
from graph.storage.sentinel import is_sentinel_url, sentinel_client

__all__ = [
    "CONNECT_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "READ_TIMEOUT_S",
    "cancel_and_wait",
    "make_client",
]

logger = logging.getLogger("cpa_planner.server")

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64


def make_client(url: str) -> aioredis.Redis:
    """An asyncio Redis client with timeouts and a short retry, so nothing hangs.

    Its pool is bounded and *waits* for a free connection (up to the read timeout) rather
    than failing: a burst of requests (200 SSE clients connecting at once) queues for a
    moment instead of getting "Too many connections". A `redis+sentinel://` URL gives a
    client of the sentinels' primary, which follows it through a failover
    (`graph.storage.sentinel`). A `redis+cluster://` URL gives redis-py's cluster client,
    `redis.asyncio.cluster.RedisCluster`, made to wait for a free connection as this pool
    does and to find a promoted replica again; what it does differently (transactions and
    scripts in one slot, pub/sub on one node, SCAN over every primary) and the answers are
    in `graph.storage.cluster`. It is not a subclass of `Redis` but answers the same
    commands, so it is typed as one here: the storage's code takes either.
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
    if is_cluster_url(url):
        return cast(aioredis.Redis, _cluster_client(url, **options))
    return aioredis.Redis.from_pool(BlockingConnectionPool.from_url(url, **options))


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait for its end, cancelling again if a cancellation is lost.

    redis-py may swallow a cancellation that lands inside a read with a timeout (the
    timeout's own cancel wins), and the task then carries on: ask until it stops.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("%s ended with %r", task.get_name(), task.exception())
