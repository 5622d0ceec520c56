"""The server's keys laid out per Cluster slot (`graph.storage.server_keys`), the names of the
previous layout, and `ConversationRecords.repair_indexes` putting right what a crash between
two steps of a change leaves in the indexes (`graph.storage.records`), on the cluster node (a
redis-server in cluster mode: it refuses cross-slot work as a Cluster does)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from graph.storage.records import ConversationRecords
from graph.storage.server_keys import (
    INDEX_SHARDS,
    RedisKeys,
    index_shard,
    legacy_index_part,
    legacy_key_name,
)

DIGEST = "a" * 40


def test_legacy_server_key_names() -> None:
    """Old-layout server keys get their tagged names; anything else is not theirs (None)."""
    cases = {
        "cpa:srv:conv:acme/c1": "cpa:srv:{acme/c1}:conv",
        "cpa:srv:pending:acme/c1": "cpa:srv:{acme/c1}:pending",
        "cpa:srv:answered:acme/c1": "cpa:srv:{acme/c1}:answered",
        "cpa:srv:lease:acme/c1": "cpa:srv:{acme/c1}:lease",
        "cpa:srv:ev:acme/a:b": "cpa:srv:{acme/a%3Ab}:ev",  # conversation id 'a:b'
        "cpa:srv:evi:acme/c1": "cpa:srv:{acme/c1}:evi",
        "cpa:srv:llm:acme/c1": "cpa:srv:{acme/c1}:llm",
        "cpa:srv:tenant:acme": "cpa:srv:{tenant:acme}:convs",
        "cpa:srv:load:acme:running": "cpa:srv:{tenant:acme}:running",
        "cpa:srv:load:acme:waiting": "cpa:srv:{tenant:acme}:waiting",
        f"cpa:srv:msg:acme:{DIGEST}": f"cpa:srv:{{tenant:acme}}:msg:{DIGEST}",
        "cpa:srv:bytes:acme": "cpa:srv:{tenant:acme}:bytes",
        "cpa:srv:bytes-exp:acme": "cpa:srv:{tenant:acme}:bytes-exp",
        "cpa:srv:rate:acme:29000000": "cpa:srv:{tenant:acme}:rate:29000000",
    }
    for old, new in cases.items():
        assert legacy_key_name("cpa:", old) == new, old
    keys = RedisKeys("cpa")
    assert legacy_key_name("cpa", "cpa:srv:conv:acme/c1") == keys.conversation("acme/c1")
    assert legacy_key_name("cpa", "cpa:srv:load:acme:waiting") == keys.tenant_waiting("acme")
    for key in (
        "cpa:srv:{acme/c1}:conv",  # already new
        "cpa:srv:{tenant:acme}:running",
        "cpa:srv:jobs",  # global keys whose names did not change
        "cpa:srv:keys",
        "cpa:srv:remote-waiting",
        "cpa:srv:archive:lead",
        "cpa:srv:running",  # the global index: split by thread (`legacy_index_part`)
        "cpa:srv:waiting",
        "cpa:t:acme/c1",  # a checkpoint key (`graph.storage.base.legacy_key_name`)
        "cpa:srv:conv:",
        "cpa:srv:load:acme:other",
        "cpa:srv:rate:acme:soon",
        "cpa:srv:unknown:acme",
        "other:srv:conv:acme/c1",
    ):
        assert legacy_key_name("cpa", key) is None, key


def test_legacy_global_index_parts() -> None:
    """The global index of the layouts before the shards is known by its part; nothing
    else (a shard, a tenant's index) is."""
    cases = {
        "cpa:srv:running": "running",
        "cpa:srv:waiting": "waiting",
        "cpa:srv:{:index}:running": "running",
        "cpa:srv:{:index}:waiting": "waiting",
        "cpa:srv:{:index}:revs": "revs",
        "cpa:srv:{:index:3}:running": None,
        "cpa:srv:{tenant:acme}:running": None,
        "cpa:srv:{:index}:other": None,
        "cpa:srv:jobs": None,
        "other:srv:running": None,
    }
    for key, part in cases.items():
        assert legacy_index_part("cpa", key) == part, key


def test_the_global_index_is_sharded_by_a_stable_hash_of_the_thread() -> None:
    keys = RedisKeys("cpa")
    shards = keys.indexes()
    assert len(shards) == INDEX_SHARDS > 1
    tags = {index.running.split("}")[0] + "}" for index in shards}
    assert len(tags) == INDEX_SHARDS and all(t.startswith("cpa:srv:{:index:") for t in tags)
    # crc32, not Python's salted hash(): the same shard in every process.
    assert index_shard("acme/c1") == 2139646101 % INDEX_SHARDS
    assert keys.index_of("acme/c1").waiting == shards[index_shard("acme/c1")].waiting
    assert len({index_shard(f"acme/c{i}") for i in range(200)}) == INDEX_SHARDS
    # One shard in each 16th of the slots: on three primaries with even ranges, 5, 5, 6.
    slots = [key_slot(index.running.encode()) for index in shards]
    assert [slot * INDEX_SHARDS // 16384 for slot in slots] == list(range(INDEX_SHARDS))
    ranges = ((0, 5460), (5461, 10922), (10923, 16383))
    assert [sum(low <= s <= high for s in slots) for low, high in ranges] == [5, 5, 6]


def threads_in_shards(n: int, tenant: str = "acme") -> list[str]:
    """`n` threads of `tenant`, each in another shard of the global index."""
    by_shard: dict[int, str] = {}
    i = 0
    while len(by_shard) < n:
        by_shard.setdefault(index_shard(f"{tenant}/c{i}"), f"{tenant}/c{i}")
        i += 1
    return list(by_shard.values())


@pytest.fixture
async def records(cluster_node_url: str) -> AsyncIterator[ConversationRecords]:
    prefix = f"test-keys-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(cluster_node_url)
    try:
        yield ConversationRecords(client, RedisKeys(prefix), ttl_s=600)
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.unlink(key)
        await client.aclose()


async def _open(records: ConversationRecords, thread: str) -> None:
    cid = thread.split("/", 1)[1]
    opened = await records.open(
        "acme", thread, cid, "{}", f"req-{cid}", max_running=10, max_waiting=10
    )
    assert opened.outcome == "new"


async def _members(records: ConversationRecords) -> tuple[set[bytes], set[bytes]]:
    index = records.keys.tenant_index("acme")
    running = await records.redis.smembers(index.running)
    waiting = set(await records.redis.zrange(index.waiting, 0, -1))
    return set(running), waiting


async def _in_shards(records: ConversationRecords, part: str) -> dict[str, set[str]]:
    """The members of `part` (running, waiting) of each shard of the global index that has
    any, by key."""
    found = {}
    for index in records.keys.indexes():
        key = getattr(index, part)
        if part == "running":
            members = await records.redis.smembers(key)
        else:
            members = await records.redis.zrange(key, 0, -1)
        if members:
            found[key] = {m.decode() for m in members}
    return found


async def test_an_open_is_indexed_on_the_tenant_and_the_global_slot(
    records: ConversationRecords,
) -> None:
    await _open(records, "acme/c1")
    assert await _members(records) == ({b"acme/c1"}, set())
    assert await _in_shards(records, "running") == {
        records.keys.index_of("acme/c1").running: {"acme/c1"}
    }
    assert await records.redis.xlen(records.keys.jobs) == 1
    assert await records.repair_indexes() == 0  # nothing to put right


async def test_repair_brings_an_index_up_to_a_newer_record(records: ConversationRecords) -> None:
    await _open(records, "acme/c1")
    # A change recorded, and a crash before its indexes: the record waits at a newer rev.
    record = records.keys.conversation("acme/c1")
    rev = int(await records.redis.hget(record, "rev"))
    await records.redis.hset(record, mapping={"status": "waiting", "rev": str(rev + 1)})
    assert await records.repair_indexes() == 2  # the tenant's index and the global one
    assert await _members(records) == (set(), {b"acme/c1"})
    assert await _in_shards(records, "waiting") == {
        records.keys.index_of("acme/c1").waiting: {"acme/c1"}
    }


async def test_repair_drops_a_reservation_whose_claim_never_came_at_the_second_look(
    records: ConversationRecords,
) -> None:
    # A crash after the admit (the tenant's slot), before the claim: no record.
    index = records.keys.tenant_index("acme")
    await records.redis.sadd(records.keys.tenants, "acme")
    await records.redis.sadd(index.running, "acme/ghost")
    await records.redis.zadd(index.revs, {"acme/ghost": 0})
    assert await records.repair_indexes() == 0  # one look: an open may be under way
    assert b"acme/ghost" in (await _members(records))[0]
    assert await records.repair_indexes() == 1
    assert await _members(records) == (set(), set())


async def test_repair_adds_the_job_a_crash_lost_at_the_second_look(
    records: ConversationRecords,
) -> None:
    await _open(records, "acme/c2")
    await records.redis.delete(records.keys.jobs)  # the crash: the job never added
    assert await records.repair_indexes() == 0
    assert await records.repair_indexes() == 1
    entries = await records.redis.xrange(records.keys.jobs)
    assert [fields for _, fields in entries] == [{b"thread": b"acme/c2"}]


async def test_each_conversation_is_indexed_in_its_shard_and_readers_see_every_shard(
    records: ConversationRecords,
) -> None:
    """Conversations in several shards: each in its own thread's shard only; the waits
    expired oldest first across the shards, `limit` at most; a repair walks every shard."""
    threads = threads_in_shards(4)
    for thread in threads:
        await _open(records, thread)
    assert await _in_shards(records, "running") == {
        records.keys.index_of(t).running: {t} for t in threads
    }
    # Each waits now, the last since longest (the index script as `finish` runs it).
    for age, thread in enumerate(threads):
        rev = int(await records.redis.hget(records.keys.conversation(thread), "rev")) + 1
        await records.redis.hset(
            records.keys.conversation(thread), mapping={"status": "waiting", "rev": str(rev)}
        )
        args = [thread, "waiting", str(rev), str(1000.0 - age), ""]
        for index in (records.keys.tenant_index("acme"), records.keys.index_of(thread)):
            assert await records._index(keys=index.keys(), args=args) == 1
    assert await _in_shards(records, "running") == {}
    assert len(await _in_shards(records, "waiting")) == 4
    oldest_first = threads[::-1]
    assert await records.waited_too_long(2000.0) == oldest_first
    assert await records.waited_too_long(2000.0, limit=3) == oldest_first[:3]
    assert await records.waited_too_long(998.5) == oldest_first[:2]
    # A change that never reached a shard (a crash): the repair finds it there.
    done = threads[1]
    rev = int(await records.redis.hget(records.keys.conversation(done), "rev")) + 1
    await records.redis.hset(
        records.keys.conversation(done), mapping={"status": "done", "rev": str(rev)}
    )
    assert await records.repair_indexes() == 2  # the tenant's index and the thread's shard
    assert await records.waited_too_long(2000.0) == [t for t in oldest_first if t != done]
