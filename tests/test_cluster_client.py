"""The storage's cluster client where redis-py's breaks during a failover (issue 28).

On the one-node cluster (`cluster_node_url`, fast): the client's own reset, which redis-py
runs on CLUSTERDOWN (a failover under way) and on a failed re-read of the slot map, is
`RedisCluster.aclose()`; the test calls it as the client does. A MULTI/EXEC pipeline
queued while the slot map is read again is queued in the caller's event loop
(`graph.storage.cluster.Transaction`), not in a thread of redis-py's whose loop is not
the client's lock's (`RuntimeError: ... bound to a different event loop`: the server's
archiver failed so during a failover, tests/test_failover.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from graph.storage.client import make_client
from graph.storage.cluster import Transaction


def cluster_url(node_url: str) -> str:
    """`redis+cluster://` of the one-node cluster's `redis://host:port/0`."""
    return "redis+cluster://" + node_url.removeprefix("redis://").removesuffix("/0")


@pytest.fixture
async def client(cluster_node_url: str) -> AsyncIterator[Any]:
    cluster = make_client(cluster_url(cluster_node_url))
    await cluster.ping()
    try:
        yield cluster
    finally:
        await cluster.aclose()


async def test_a_transaction_queued_while_the_slot_map_is_read_again(
    client: Any, redis_prefix: str
) -> None:
    key = f"{redis_prefix}:{{t}}:n"

    async def transaction() -> list[Any]:
        pipe = client.pipeline(transaction=True)
        assert isinstance(pipe._execution_strategy, Transaction)
        pipe.incr(key)
        pipe.expire(key, 60)
        return list(await pipe.execute())

    await client.aclose()  # the slot map is read again at the next command, under a lock
    # The reads re-read the map (one holds the client's lock) while the transaction queues:
    # redis-py's queueing thread would wait on that lock from another loop (RuntimeError).
    results = await asyncio.gather(*(client.get(key) for _ in range(5)), transaction())
    assert results[-1] == [1, True]
    assert int(await client.get(key)) == 1
    assert isinstance(client, RedisCluster)
