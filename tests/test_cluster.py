"""The storage's client on a real Redis Cluster (issue 28): three primaries, one replica each.

`redis_cluster_url` (conftest) is a session cluster of Debian `redis-server` processes on
loopback (`tests.support.redis_cluster.RedisCluster`); the failover tests start one of their
own, since they kill a primary. Through `graph.storage.client.make_client` and its
`redis+cluster://` URL:

- the harness: keys spread over the three primaries, every replica in sync;
- what the cluster client does differently (`graph.storage.cluster`): pub/sub reaches a
  subscriber whatever node the message is published on, transactions and scripts work
  within one slot, SCAN sees every primary;
- a primary killed mid-run: its replica is promoted, the client carries on (the commands in
  between fail with a Redis-is-away error the callers wait out, and how long is measured);
- the checkpointer's conformance suite through `RedisSaver.from_url(<cluster URL>)`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    ALL_CAPABILITIES,
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import RedisClusterException

from graph.storage.client import MAX_CONNECTIONS, make_client
from graph.storage.cluster import parse_cluster_url
from graph.storage.errors import REDIS_DOWN
from graph.storage.saver import RedisSaver
from tests.support.redis_cluster import RedisCluster
from tests.test_checkpointer_conformance import BASE_TESTS, EXTENDED_TESTS

pytestmark = pytest.mark.slow


def _nodes(url: str) -> list[redis.Redis]:
    return [redis.Redis(host=h, port=p, socket_timeout=5) for h, p in parse_cluster_url(url).nodes]


def _primaries(url: str) -> list[redis.Redis]:
    return [n for n in _nodes(url) if n.info("replication")["role"] == "master"]


@pytest.fixture
async def client(redis_cluster_url: str) -> AsyncIterator[Any]:
    cluster = make_client(redis_cluster_url)
    await cluster.ping()  # reads the slot map, which a subscription needs (graph.storage.cluster)
    try:
        yield cluster
    finally:
        await cluster.aclose()


# The harness ---------------------------------------------------------------------------------


async def test_keys_spread_over_the_three_primaries(
    redis_cluster_url: str, redis_prefix: str, client: Any
) -> None:
    assert isinstance(client, AsyncRedisCluster)
    for i in range(60):
        await client.set(f"{redis_prefix}:k{i}", i)
    primaries = _primaries(redis_cluster_url)
    assert len(primaries) == 3
    held = [len(list(node.scan_iter(match=f"{redis_prefix}:*"))) for node in primaries]
    assert sum(held) == 60 and all(held), held
    # Every replica holds its primary's share (the harness waited for them to be in sync).
    for node in _nodes(redis_cluster_url):
        if node.info("replication")["role"] == "slave":
            assert node.info("replication")["master_link_status"] == "up"
    values = [cast(bytes, await client.get(f"{redis_prefix}:k{i}")) for i in range(60)]
    assert [int(v) for v in values] == list(range(60))


# What the cluster client lacks, and the answers ------------------------------------------------


async def test_a_message_published_on_any_node_reaches_the_subscriber(
    redis_cluster_url: str, redis_prefix: str, client: Any
) -> None:
    channel = f"{redis_prefix}:events"
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        for n, node in enumerate(_nodes(redis_cluster_url)):
            node.publish(channel, f"from {n}")  # a plain PUBLISH: the cluster relays it
            message = None
            while message is None:
                message = await pubsub.get_message(timeout=5.0)
            assert message["data"] == f"from {n}".encode()
    finally:
        await pubsub.aclose()


async def test_transactions_and_scripts_in_one_slot(redis_prefix: str, client: Any) -> None:
    a, b = f"{redis_prefix}:{{t}}:a", f"{redis_prefix}:{{t}}:b"
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(a)
        pipe.multi()
        pipe.set(a, 1).set(b, 2)
        assert await pipe.execute() == [True, True]
    swap = client.register_script("return redis.call('RENAME', KEYS[1], KEYS[2])")
    assert await swap(keys=[a, f"{redis_prefix}:{{t}}:c"]) == b"OK"
    # Keys of two slots are refused before anything is sent.
    with pytest.raises(RedisClusterException):
        await swap(keys=[b, f"{redis_prefix}:other"])
    with pytest.raises(RedisClusterException):
        async with client.pipeline(transaction=True) as pipe:
            pipe.multi()
            pipe.set(b, 3).set(f"{redis_prefix}:other", 3)
            await pipe.execute()
    assert await client.get(b) == b"2"


async def test_scan_sees_every_primary(redis_prefix: str, client: Any) -> None:
    keys = {f"{redis_prefix}:s{i}".encode() for i in range(30)}
    for key in keys:
        await client.set(key, 1)
    assert {k async for k in client.scan_iter(match=f"{redis_prefix}:s*")} == keys


async def test_a_burst_beyond_the_plain_pools_bound_is_served(
    redis_prefix: str, client: Any
) -> None:
    # The cluster client's pools fail when full instead of waiting (graph.storage.cluster):
    # a burst of the server's size, every command on one node, must find connections.
    key = f"{redis_prefix}:burst"
    await client.set(key, "x")
    burst = 6 * MAX_CONNECTIONS
    replies = await asyncio.gather(*(client.get(key) for _ in range(burst)))
    assert replies == [b"x"] * burst


# A primary killed ------------------------------------------------------------------------------


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    binary = os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not binary or not shutil.which("redis-cli"):
        pytest.skip("redis-server and redis-cli are needed for a cluster of its own")
    cluster = RedisCluster(binary, tmp_path / "cluster")
    started = time.monotonic()
    cluster.start()
    print(f"\ncluster of six nodes started in {time.monotonic() - started:.1f} s")
    try:
        yield cluster
    finally:
        cluster.stop()


def _replicated(cluster: RedisCluster, key: str) -> None:
    """Wait until the replica of `key`'s primary holds it (read there with READONLY)."""
    replica = cluster.replica_of(cluster.primary_of(key)).client()
    try:
        replica.execute_command("READONLY")  # type: ignore[no-untyped-call]
        while replica.get(key) is None:
            time.sleep(0.02)
    finally:
        replica.close()


async def test_a_primary_killed_its_replica_promoted_the_client_carries_on(
    own_cluster: RedisCluster,
) -> None:
    key = f"run-{uuid.uuid4().hex[:8]}"
    client = make_client(own_cluster.url)
    try:
        await client.set(key, 0)
        await asyncio.to_thread(_replicated, own_cluster, key)

        errors: list[tuple[float, BaseException]] = []
        writes = 0
        stop_at: int | None = None  # set once the replica is promoted: 20 writes more

        async def run() -> None:
            # A run writing on: each command once, errors noted and the command tried again
            # (as `graph.storage.outage.retried` does).
            nonlocal writes
            while stop_at is None or writes < stop_at:
                try:
                    await client.incr(key)
                    writes += 1
                except REDIS_DOWN as exc:
                    errors.append((time.monotonic(), exc))
                await asyncio.sleep(0.01)

        runner = asyncio.create_task(run())
        await asyncio.sleep(0.2)
        killed_at = time.monotonic()
        killed, promoted = await asyncio.to_thread(own_cluster.kill_primary_of, key)
        promoted_at = time.monotonic()
        stop_at = writes + 20
        await asyncio.wait_for(runner, 60)  # it carries on after the failover

        assert own_cluster.primary_of(key) is promoted and killed.proc is None
        # Nothing was lost: every acknowledged write is there (the replica was in sync and
        # the run writes nothing that is not acknowledged... unless a write was applied
        # and its answer lost, which a ConnectionError leaves possible: at least `writes`).
        assert int(cast(bytes, await client.get(key))) >= writes
        assert errors, "the client saw no error while the primary was down"
        window = errors[-1][0] - errors[0][0]
        print(
            f"\nfailover: promoted {promoted_at - killed_at:.2f} s after the kill; "
            f"the client saw {len(errors)} errors over {window:.2f} s "
            f"({', '.join(sorted({type(e).__name__ for _, e in errors}))})"
        )
    finally:
        await client.aclose()


# The checkpointer ------------------------------------------------------------------------------


async def test_conformance_every_capability_on_the_cluster(
    redis_cluster_url: str, redis_prefix: str
) -> None:
    @checkpointer_test(name=f"cpa-cluster-{redis_prefix}")
    async def factory() -> AsyncIterator[RedisSaver]:
        prefix = f"{redis_prefix}:{uuid.uuid4().hex[:8]}"
        async with RedisSaver.from_url(redis_cluster_url, prefix=prefix) as saver:
            yield saver

    report = await validate(factory)
    results = report.to_dict()["results"]
    for cap in ALL_CAPABILITIES:
        result = results[cap.value]
        assert result["detected"], cap.value
        assert result["tests_failed"] == 0, (cap.value, result["failures"])
        assert result["tests_passed"] > 0, cap.value
    assert sum(results[c.value]["tests_passed"] for c in BASE_CAPABILITIES) == BASE_TESTS
    assert sum(results[c.value]["tests_passed"] for c in EXTENDED_CAPABILITIES) == EXTENDED_TESTS


def test_the_command_line_runs_and_resumes_a_conversation_on_the_cluster(
    redis_cluster_url: str, redis_prefix: str
) -> None:
    # `cpa-planner run` keeps its conversation in the cluster (REDIS_URL), and `resume` in
    # another process finds it there, still waiting for the desktop agent (exit 5: no
    # terminal to ask at).
    env = {**os.environ, "REDIS_URL": redis_cluster_url, "CPA_REDIS_PREFIX": redis_prefix}
    cli = [sys.executable, "-m", "cli"]
    ran = subprocess.run(
        [*cli, "run", "--yes", "--json", "Remind me to call Anna tomorrow at 9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 5, ran.stderr[-2000:]
    conversation = json.loads(ran.stdout)["conversation_id"]
    resumed = subprocess.run(
        [*cli, "resume", "--no-input", "--json", conversation],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 5, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["conversation_id"] == conversation
    primaries = _primaries(redis_cluster_url)
    holding = [any(True for _ in n.scan_iter(match=f"{redis_prefix}:t:*")) for n in primaries]
    assert any(holding)
