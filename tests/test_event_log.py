"""The event log's appends off the run's path, and waiters woken by status notices only.

Real Redis (Valkey, the session's server); the Feeds' subscription is the server's own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.events import Feeds
from graph.storage.event_log import EventLog
from graph.storage.fencing import FencedError
from graph.storage.saver import RedisSaver
from graph.storage.server_keys import RedisKeys


def message(n: int) -> dict[str, Any]:
    return {"id": f"m{n}", "n": n}


@pytest.fixture(params=["alone", "group commit"])
async def log(
    valkey_url: str, redis_prefix: str, request: pytest.FixtureRequest
) -> AsyncIterator[EventLog]:
    """The log as the server has it (appends in the checkpointer's group commit), and alone."""
    client = aioredis.from_url(valkey_url)
    saver = RedisSaver(client, prefix=redis_prefix)
    scripts = saver.call_script if request.param == "group commit" else None
    yield EventLog(client, RedisKeys(redis_prefix), scripts)
    await client.aclose()


async def logged(log: EventLog, thread: str) -> list[int]:
    raw, _ = await log.read(thread, 0)
    return [json.loads(item)["n"] for item in raw]


async def test_appends_keep_their_order_and_coalesce_while_one_is_in_flight(
    log: EventLog,
) -> None:
    calls: list[int] = []
    append = log.append

    async def counted(thread: str, messages: list[dict[str, Any]], generation: str = "") -> int:
        calls.append(len(messages))
        return await append(thread, messages, generation)

    log.append = counted  # type: ignore[method-assign]
    appender = log.appender("t/1")
    for n in range(50):
        appender.add(message(n))
        if n % 7 == 0:
            await asyncio.sleep(0)  # the run goes on between messages
    appender.add(message(3))  # seen before: not logged twice
    await appender.flush()

    assert await logged(log, "t/1") == list(range(50))
    assert sum(calls) == 51
    assert len(calls) < 51  # messages that came during a call went out together


async def test_a_stale_generation_is_raised_and_nothing_more_is_sent(log: EventLog) -> None:
    await log.redis.set(log.keys.fence("t/2"), "7")
    appender = log.appender("t/2", generation="6")
    appender.add(message(1))
    with pytest.raises(FencedError):
        await appender.flush()
    with pytest.raises(FencedError):
        appender.add(message(2))
    await appender.close()
    assert await logged(log, "t/2") == []


async def test_close_stops_the_sender(log: EventLog) -> None:
    appender = log.appender("t/3")
    appender.add(message(1))
    await appender.close()
    appender.add(message(2))  # a fresh sender: close is not an error state
    await appender.flush()
    assert 2 in await logged(log, "t/3")


async def test_a_waiter_looks_at_the_status_when_it_changes_not_at_every_append(
    log: EventLog,
) -> None:
    """A `POST ?wait=` caller is woken by `srv:status`, not by the run's many appends."""
    thread = "t/4"
    conversation = log.keys.conversation(thread)
    await log.redis.hset(conversation, "status", "running")
    feeds = Feeds(log, refresh_s=30)
    await feeds.start()
    looks = 0
    looked = asyncio.Event()
    hget = log.redis.hget

    async def counted_hget(key: str, field: str) -> Any:
        nonlocal looks
        if key == conversation:
            looks += 1
            looked.set()
        return await hget(key, field)

    log.redis.hget = counted_hget
    try:
        await asyncio.wait_for(feeds._subscribed.wait(), 10)
        waiter = asyncio.create_task(feeds.until_settled(thread, 30))
        await asyncio.wait_for(looked.wait(), 10)
        appender = log.appender(thread)
        for n in range(40):
            appender.add(message(n))
            await appender.flush()  # 40 appends, 40 notices on srv:events
        await log.redis.hset(conversation, "status", "waiting")
        await log.redis.publish(log.keys.status_channel, thread)
        await asyncio.wait_for(waiter, 10)
    finally:
        await feeds.close()
    # The first look, the one after the status notice, and at most a few of the
    # once-a-second looks (a slow machine): never one per append.
    assert 2 <= looks < 10


async def test_appends_are_announced_only_while_someone_listens(log: EventLog) -> None:
    """A run nobody watches sends no notice per message; a feed (an SSE listener on any
    replica) makes them come, and sees every message."""
    thread = "t/5"
    await log.redis.hset(log.keys.conversation(thread), "status", "running")
    watcher = log.redis.pubsub(ignore_subscribe_messages=True)
    await watcher.subscribe(log.keys.events_channel)
    feeds = Feeds(log, refresh_s=30)
    await feeds.start()

    async def notices() -> list[bytes]:
        await log.redis.publish(log.keys.events_channel, b"end")  # a marker: all came before
        seen: list[bytes] = []
        for _ in range(100):  # None: a subscription's own reply, or nothing yet
            item = await watcher.get_message(timeout=0.1)
            if item is None:
                continue
            if item["data"] == b"end":
                return seen
            seen.append(item["data"])
        raise AssertionError("the marker never came")

    try:
        assert await log.append(thread, [message(1)]) == 1
        assert await notices() == []  # nobody listens: nothing announced

        async with feeds.feed(thread) as feed:
            assert [m for m, _ in feed.events] == ["m1"]
            seen = feed.changed
            assert await log.append(thread, [message(2)]) == 1
            assert await notices() == [thread.encode()]
            await asyncio.wait_for(seen.wait(), 10)  # the feed read what is new
            assert [m for m, _ in feed.events] == ["m1", "m2"]
    finally:
        await feeds.close()
        await watcher.aclose()
