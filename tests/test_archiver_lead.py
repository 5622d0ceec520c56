"""One archiver reads the archive stream while one is enough (`api.archiver`).

Two archivers on one stream and one SQLite history: while the backlog is small only the lead
stores; when the lead stops, the other takes over at its next look (not after the lease);
when the backlog grows past `join_backlog`, both store; a lead that died (its lease lapsed)
is replaced. Every message ends up stored once, in its place, whoever stored it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.archiver import Archiver
from graph.history.settings import HistorySettings
from graph.history.store import HistoryStore
from graph.storage.event_log import EventLog
from graph.storage.server_keys import RedisKeys
from tests.support.history_harness import lam_message


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def parts(
    valkey_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Any, RedisKeys, HistoryStore, EventLog]]:
    client = aioredis.from_url(valkey_url)
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")
    await store.check_schema()
    keys = RedisKeys(redis_prefix)
    yield client, keys, store, EventLog(client, keys, archive=True)
    await store.close()
    await client.aclose()


def archiver(
    client: Any, keys: RedisKeys, store: HistoryStore, name: str, **options: Any
) -> Archiver:
    settings = HistorySettings(history_url="unused", history_batch=10)
    return Archiver(client, keys, store, settings, name, linger_s=0.05, **options)


async def test_one_archiver_reads_while_one_is_enough_and_the_other_takes_over(
    parts: tuple[Any, RedisKeys, HistoryStore, EventLog],
) -> None:
    client, keys, store, log = parts
    first = archiver(client, keys, store, "first")
    await first.start()
    assert await until(lambda: _lead(client, keys, "first"))
    second = archiver(client, keys, store, "second")
    await second.start()
    try:
        for n in range(6):  # a small backlog, a little at a time: the lead keeps up alone
            await log.append(f"acme/c{n}", [lam_message(f"c{n}", 0), lam_message(f"c{n}", 1)])
            await asyncio.sleep(0.2)
        assert await until(lambda: _drained(client, keys))
        assert first.stored == 12 and second.stored == 0
        assert await client.get(keys.archive_lead) == b"first"

        await first.close()  # gives the lead up: the other takes it at its next look
        assert await until(lambda: _lead(client, keys, "second"), seconds=5)
        await log.append("acme/c9", [lam_message("c9", 0)])
        assert await until(lambda: _drained(client, keys))
        assert second.stored == 1
        for n in range(6):
            assert await store.messages("acme", f"c{n}") == [
                lam_message(f"c{n}", 0),
                lam_message(f"c{n}", 1),
            ]
    finally:
        await first.close()
        await second.close()


async def test_the_others_join_while_the_backlog_is_large(
    parts: tuple[Any, RedisKeys, HistoryStore, EventLog],
) -> None:
    client, keys, store, log = parts
    # 60 entries queued before anyone reads: far past two batches of 10.
    for n in range(60):
        await log.append(f"acme/b{n}", [lam_message(f"b{n}", 0), lam_message(f"b{n}", 1)])
    first = archiver(client, keys, store, "first")
    second = archiver(client, keys, store, "second")
    await first.start()
    await second.start()
    try:
        assert await until(lambda: _drained(client, keys))
        assert first.stored > 0 and second.stored > 0  # both worked the backlog off
        assert first.stored + second.stored == 120  # each message once
        for n in range(60):
            assert await store.messages("acme", f"b{n}") == [
                lam_message(f"b{n}", 0),
                lam_message(f"b{n}", 1),
            ]
    finally:
        await first.close()
        await second.close()


async def test_a_lead_that_died_is_replaced_once_its_lease_lapses(
    parts: tuple[Any, RedisKeys, HistoryStore, EventLog],
) -> None:
    client, keys, store, log = parts
    # An archiver that died holding the lead: nothing gives it up, its lease runs out.
    await client.set(keys.archive_lead, "dead", px=1500)
    survivor = archiver(client, keys, store, "survivor")
    await survivor.start()
    try:
        await log.append("acme/d1", [lam_message("d1", 0)])
        await asyncio.sleep(0.5)
        assert survivor.stored == 0  # the dead one still leads, and one entry is no backlog
        assert await until(lambda: _drained(client, keys), seconds=10)
        assert survivor.stored == 1
        assert await client.get(keys.archive_lead) == b"survivor"
    finally:
        await survivor.close()
    assert await client.get(keys.archive_lead) is None  # given up when it stopped


async def _lead(client: Any, keys: RedisKeys, name: str) -> bool:
    return bool(await client.get(keys.archive_lead) == name.encode())


async def _drained(client: Any, keys: RedisKeys) -> bool:
    return bool(await client.xlen(keys.archive) == 0)
