"""`python -m graph.storage.migrate`: a conversation stored under the names before hash tags
is read again after the migration, whole, with its TTL (the checkpointer's; and the
server's: a conversation waiting for the desktop agent is answered and runs to done after
it); a second run moves nothing; a conflicting new key is reported and both kept. On one
Redis and on the one-node cluster (where the old and new names of a key are in different
slots)."""

from __future__ import annotations

import asyncio
import uuid
from typing import cast
from urllib.parse import unquote  # the inverse of `key_part`'s percent-escapes

import pytest
import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig

from api.settings import ServerSettings
from graph.storage import server_keys
from graph.storage.base import key_part, legacy_key_name
from graph.storage.migrate import main, migrate_keys
from tests.support.server_harness import (
    approve_until_assigned,
    done_for,
    request_message,
    wait_status,
)
from tests.test_checkpointer import _cfg, _graph, _msg, _saver
from tests.test_principals import served
from tests.test_server_keys import threads_in_shards


@pytest.fixture(params=["redis7", "cluster_node"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def _old_name(prefix: str, key: str) -> str:
    """The name the layout before hash tags gave `key` (braces of ids not escaped)."""
    if not key.startswith(f"{prefix}:t:{{"):
        return key
    tag, _, rest = key[len(prefix) + 4 :].partition("}")
    return f"{prefix}:t:{_unbraced(tag)}" + _unbraced(rest)


def _unbraced(part: str) -> str:
    return part.replace("%7B", "{").replace("%7D", "}")


async def _to_old_layout(client: aioredis.Redis, prefix: str) -> int:
    moved = 0
    for key in [raw.decode() async for raw in client.scan_iter(match=f"{prefix}:t:*")]:
        old = _old_name(prefix, key)
        assert legacy_key_name(prefix, old) == key
        ttl = await client.pttl(key)
        await client.restore(old, max(ttl, 0), cast(bytes, await client.dump(key)))
        await client.delete(key)
        moved += 1
    return moved


async def test_an_old_layout_conversation_is_read_again_after_the_migration(
    url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    thread, ns = "acme/c:{1}", "child:{x}"
    saver = _saver(url, redis_prefix)
    client = aioredis.from_url(url)
    try:
        await (
            _graph().compile(checkpointer=saver).ainvoke({"lam": [_msg("user", "x")]}, _cfg(thread))
        )
        tup = await saver.aget_tuple(_cfg(thread))
        assert tup is not None
        sub: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
        stored = await saver.aput(sub, tup.checkpoint, tup.metadata, {})
        await saver.aput_writes(stored, [("lam", _msg("u", "w"))], "task")
        await saver.expire_conversation(thread, ttl_s=3600)
        before = [t.checkpoint["id"] async for t in saver.alist(_cfg(thread))]
        writes = (await saver.aget_tuple(sub)).pending_writes  # type: ignore[union-attr]

        moved = await _to_old_layout(client, redis_prefix)
        assert moved > 5 and await saver.aget_tuple(_cfg(thread)) is None  # not read any more

        dry = await migrate_keys(client, redis_prefix, dry_run=True)
        assert (dry.moved, dry.conflicts) == (moved, [])
        assert await saver.aget_tuple(_cfg(thread)) is None  # a dry run moves nothing

        monkeypatch.setenv("REDIS_URL", url)
        monkeypatch.setenv("CPA_REDIS_PREFIX", redis_prefix)
        assert await asyncio.to_thread(main, []) == 0
        assert f"moved {moved} key(s)" in capsys.readouterr().out

        after = await saver.aget_tuple(_cfg(thread))
        assert after is not None and after.checkpoint == tup.checkpoint
        assert [t.checkpoint["id"] async for t in saver.alist(_cfg(thread))] == before
        assert (await saver.aget_tuple(sub)).pending_writes == writes  # type: ignore[union-attr]
        async for raw in client.scan_iter(match=f"{redis_prefix}:t:*"):
            assert 0 < await client.ttl(raw) <= 3600  # the TTL moved with each key
        assert await asyncio.to_thread(main, []) == 0
        assert "nothing to move" in capsys.readouterr().out
    finally:
        await client.aclose()
        await saver.aclose()


async def test_a_new_key_holding_another_value_is_a_conflict_and_both_are_kept(
    url: str, redis_prefix: str
) -> None:
    client = aioredis.from_url(url)
    try:
        old, new = (
            f"{redis_prefix}:t:acme/c1:fence",
            f"{redis_prefix}:t:{{{key_part('acme/c1')}}}:fence",
        )
        same_old, same_new = (
            f"{redis_prefix}:t:acme/c2:fence",
            f"{redis_prefix}:t:{{acme/c2}}:fence",
        )
        await client.set(old, "1")
        await client.set(new, "2")
        await client.set(same_old, "7")
        await client.set(same_new, "7")  # an earlier run stopped between RESTORE and DEL
        migration = await migrate_keys(client, redis_prefix)
        assert migration.conflicts == [(old, new)]
        assert migration.moved == 1
        assert (await client.get(old), await client.get(new)) == (b"1", b"2")
        assert await client.exists(same_old) == 0 and await client.get(same_new) == b"7"
    finally:
        await client.aclose()


def _old_server_name(prefix: str, key: str) -> str | None:
    """The name the layout before hash tags gave server key `key`; None for a key it did
    not have (the indexes' revisions)."""
    base = f"{prefix}:srv:"
    if not key.startswith(base + "{"):
        return key  # a global key: its name did not change
    tag, _, name = key[len(base) + 1 :].partition("}:")
    if tag.startswith(":index:"):  # a shard of the global index: all in one old key
        return None if name == "revs" else base + name
    if tag.startswith("tenant:"):
        tenant = unquote(tag[len("tenant:") :])
        if name == "convs":
            return f"{base}tenant:{tenant}"
        if name in ("running", "waiting"):
            return f"{base}load:{tenant}:{name}"
        if name in ("bytes", "bytes-exp"):
            return f"{base}{name}:{tenant}"
        kind, _, last = name.partition(":")
        return f"{base}{kind}:{tenant}:{last}" if kind in ("msg", "rate") else None
    return f"{base}{name}:{unquote(tag)}"


async def _merge_into(client: aioredis.Redis, shard: str, old: str) -> None:
    if old.endswith(":running"):
        await client.sadd(old, *await client.smembers(shard))
    else:
        rows = cast(list[tuple[bytes, float]], await client.zrange(shard, 0, -1, withscores=True))
        await client.zadd(old, dict(rows))


async def _server_to_old_layout(client: aioredis.Redis, prefix: str) -> int:
    """Every server key under its old name, records without their `rev`: as the layout
    before hash tags left them. The number of keys renamed."""
    renamed = 0
    for key in [raw.decode() async for raw in client.scan_iter(match=f"{prefix}:srv:*")]:
        old = _old_server_name(prefix, key)
        if old == key:
            continue
        if old is not None and server_keys.legacy_index_part(prefix, old):
            await _merge_into(client, key, old)  # the shards into the one old index
            renamed += 1
        elif old is not None:
            assert server_keys.legacy_key_name(prefix, old) == key, key
            if key.endswith("}:conv"):
                await client.hdel(key, "rev")
            ttl = await client.pttl(key)
            await client.restore(old, max(ttl, 0), cast(bytes, await client.dump(key)))
            renamed += 1
        await client.delete(key)
    return renamed


async def test_a_server_conversation_of_the_old_layout_runs_on_after_the_migration(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation the server left waiting for the desktop agent, its keys put back
    under their old names (and its checkpoints): after the migration the next server
    finds it waiting, takes the answer and runs it to done."""
    prefix = f"test-migrate-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("CPA_REDIS_PREFIX", prefix)
    client = aioredis.from_url(url)
    try:
        async with served(url, ServerSettings(), redis_prefix=prefix, keep=True) as (_, http):
            opened = await http.post(
                "/v1/lam", json=request_message("Remind me to water the plants")
            )
            cid = opened.json()["conversation_id"]
            assign = await approve_until_assigned(http, cid)
            assert (await wait_status(http, cid, {"waiting"}))["status"] == "waiting"
        renamed = await _server_to_old_layout(client, prefix)
        assert renamed >= 6  # the record, its log and index, answered, the tenant's, the index
        assert await _to_old_layout(client, prefix) > 0
        (raw,) = await client.zrange(f"{prefix}:srv:waiting", 0, -1)
        thread = cast(bytes, raw).decode()
        since = await client.zscore(f"{prefix}:srv:waiting", thread)

        assert await asyncio.to_thread(main, []) == 0
        keys = server_keys.RedisKeys(prefix)
        assert await client.exists(f"{prefix}:srv:waiting") == 0
        for index in keys.indexes():  # in its thread's shard only, its wait's since kept
            expected = since if index.waiting == keys.index_of(thread).waiting else None
            assert await client.zscore(index.waiting, thread) == expected, index.waiting
        async with served(url, ServerSettings(), redis_prefix=prefix) as (_, http):
            assert (await http.get(f"/v1/conversations/{cid}")).json()["status"] == "waiting"
            answered = await http.post("/v1/lam", json=done_for(assign, "watered"))
            assert answered.status_code == 202, answered.text
            assert (await wait_status(http, cid, {"done", "failed"}))["status"] == "done"
    finally:
        await client.aclose()


async def test_the_old_global_index_is_split_into_its_threads_shards(url: str) -> None:
    """`srv:running`/`srv:waiting` (no tags) and the unsharded `srv:{:index}:…`: each member
    lands in its thread's shard with its score; an entry already there stays; the old keys
    go; a second run moves nothing."""
    prefix = f"test-migrate-{uuid.uuid4().hex[:8]}"
    keys = server_keys.RedisKeys(prefix)
    threads = threads_in_shards(5)
    client = aioredis.from_url(url)
    try:
        await client.sadd(f"{prefix}:srv:running", *threads[:3])
        await client.zadd(f"{prefix}:srv:waiting", {threads[3]: 40.0, threads[4]: 50.0})
        await client.zadd(f"{prefix}:srv:{{:index}}:revs", {t: 7 for t in threads})
        await client.zadd(keys.index_of(threads[4]).waiting, {threads[4]: 99.0})  # newer
        dry = await migrate_keys(client, prefix, dry_run=True)
        assert (dry.moved, dry.conflicts) == (3, [])
        assert await client.exists(f"{prefix}:srv:running") == 1
        migration = await migrate_keys(client, prefix)
        assert (migration.moved, migration.conflicts) == (3, [])
        for old in ("running", "waiting", "{:index}:revs"):
            assert await client.exists(f"{prefix}:srv:{old}") == 0
        for i, thread in enumerate(threads):
            mine = keys.index_of(thread)
            assert await client.zscore(mine.revs, thread) == 7
            assert await client.sismember(mine.running, thread) == (i < 3)
            assert await client.zscore(mine.waiting, thread) == {3: 40.0, 4: 99.0}.get(i)
        theirs = {keys.index_of(t).revs for t in threads}
        for index in keys.indexes():  # the other shards: nothing
            if index.revs not in theirs:
                assert await client.exists(index.running, index.waiting, index.revs) == 0
        again = await migrate_keys(client, prefix)
        assert (again.moved, again.conflicts) == (0, [])
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.unlink(key)
        await client.aclose()
