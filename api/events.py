"""Each conversation's event log, fanned out to every SSE listener of the process.

The log (`srv:ev:H`, indexed by message id in `srv:evi:H`, `graph.storage.event_log`)
holds the conversation's LAM messages in the order first seen, each once: the runner
appends each message as it streams, and the whole view again when a run stops
(`Runs.finish`). Every append is
announced on the pub/sub channel `srv:events` while someone listens to the conversation
(`srv:listen:H`, kept alive by the processes that have listeners), every change of its
status on `srv:status` (the thread as the payload of both). A run nobody watches sends no
notice per message, and no replica reads one.

One process holds one subscription to the two channels (`Feeds`), whatever the number of
listeners. A conversation with listeners in this process has one in-memory `Feed`: told
that its thread changed, it reads what is new once (one LRANGE and the status) and wakes
its listeners, who take their events from memory. Nothing polls per listener. A caller
waiting for a run to stop (`POST /v1/lam?wait=`) looks at the status only when it changed,
not at every message the run appends.

Progress is passing news, not part of the log: which step waits on a model (`llm`), the
answer's pieces as the model writes it (`token`), a streamed plan as it is written
(`plan_written`, `graph.plan_stream`). The runner publishes it on the thread's
own channel (`srv:ev:H:progress`), so a stream on any replica can pass it on; a stream asked
for it (`?progress=true`) subscribes while it lasts and sends it as SSE events of those
names, without an `id:` (the Last-Event-ID stays the last LAM message's). Nobody listening,
nothing is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.sse import ServerSentEvent

from api.models import FINAL_STATUSES
from graph.storage.client import cancel_and_wait
from graph.storage.errors import REDIS_DOWN
from graph.storage.event_log import EventLog
from graph.storage.outage import FIRST_WAIT_S, retried

logger = logging.getLogger("cpa_planner.server")
#: The kinds of progress news a stream passes on (the key of the run's custom event).
PROGRESS_KINDS = ("llm", "token", "plan_written")
# How long `srv:listen:H` says "someone listens" without being renewed (every third of it).
LISTENING_MS = 30_000


@dataclass
class Feed:
    """One conversation's events in this process, shared by all its listeners here."""

    thread: str
    events: list[tuple[str, str]] = field(default_factory=list)  # (message id, JSON)
    status: str | None = "running"
    listeners: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    dirty: bool = False
    refresher: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        """Done, failed, or gone: nothing more will come."""
        return self.status is None or self.status in FINAL_STATUSES

    def _wake(self) -> None:
        # A fresh event per change: a listener waits on the one it saw before looking.
        woken, self.changed = self.changed, asyncio.Event()
        woken.set()


class Feeds:
    """The process's one subscription to `srv:events` and `srv:status`, feeding every local
    listener and waiter."""

    def __init__(self, log: EventLog, refresh_s: float) -> None:
        self.log = log
        self.refresh_s = refresh_s
        self._feeds: dict[str, Feed] = {}
        # Callers waiting for a conversation to stop running (`until_settled`), by thread.
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._waits_ended = False  # this process stops: nobody waits any more
        self._task: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    # The subscription ---------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe (in the background; listeners may come before it is up)."""
        self._task = asyncio.create_task(self._subscription(), name="sse-feeds")
        self._renewer = asyncio.create_task(self._keep_listening(), name="sse-listening")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._renewer is not None:
            await cancel_and_wait(self._renewer)
        for feed in self._feeds.values():
            if feed.refresher is not None:
                feed.refresher.cancel()

    async def _subscription(self) -> None:
        """Subscribed for as long as the process runs: a lost subscription is taken again
        (`graph.storage.outage`: backing off while it fails)."""
        while True:
            pubsub = await retried(
                self._subscribe, retry_on=(Exception,), on_retry=_subscription_lost
            )
            try:
                self._subscribed.set()
                # Notices sent while unsubscribed are lost: every feed reads afresh.
                self.poke_all()
                await self._relay(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _subscription_lost(exc)
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(FIRST_WAIT_S)  # as after a failed subscribe: never a busy loop

    async def _subscribe(self) -> Any:
        pubsub = self.log.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.log.keys.events_channel, self.log.keys.status_channel)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _relay(self, pubsub: Any) -> None:
        """Poke the feeds the notices name, until the subscription fails."""
        status_channel = self.log.keys.status_channel.encode()
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_s
        while True:
            message = await pubsub.get_message(timeout=min(self.refresh_s, 5.0))
            if message is not None and message.get("type") == "message":
                status = message["channel"] == status_channel
                self.poke(message["data"].decode(), status=status)
            if loop.time() >= next_refresh:
                self.poke_all()  # a safety net, per conversation, rarely
                next_refresh = loop.time() + self.refresh_s

    # Listening ------------------------------------------------------------------------------

    async def _listen(self, threads: list[str]) -> None:
        """Tell the runners (any replica) that these threads have listeners here."""
        if not threads:
            return
        pipe = self.log.redis.pipeline(transaction=False)
        for thread in threads:
            pipe.set(self.log.keys.listening(thread), 1, px=LISTENING_MS)
        await pipe.execute()

    async def _keep_listening(self) -> None:
        while True:
            await asyncio.sleep(LISTENING_MS / 3000)
            try:
                await self._listen(list(self._feeds))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away, or anything else: try again next time
                logger.warning("SSE feeds: cannot renew the listeners (%s); retrying", exc)

    # Feeds ----------------------------------------------------------------------------------

    def poke(self, thread: str, *, status: bool = True) -> None:
        """The thread changed: its feed (if any here) reads what is new, once; if its
        `status` may have changed, callers waiting for the run to stop look too."""
        if status:
            for waiter in self._waiters.get(thread, ()):
                waiter.set()
        feed = self._feeds.get(thread)
        if feed is None:
            return
        feed.dirty = True
        if feed.refresher is None or feed.refresher.done():
            feed.refresher = asyncio.create_task(self._refresh(feed))

    def poke_all(self) -> None:
        for thread in list(self._feeds) + list(self._waiters):
            self.poke(thread)

    async def until_settled(self, thread: str, seconds: float) -> None:
        """Until the conversation is not `running` (on any replica), or `seconds` passed.

        Woken by the notices on `srv:status` (every status change is announced), with a
        look every second besides, in case a notice was lost.
        """
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        woken = asyncio.Event()
        self._waiters.setdefault(thread, set()).add(woken)
        try:
            while True:
                woken.clear()  # before looking: a notice after the look wakes us
                if self._waits_ended:
                    return
                status = await self.log.redis.hget(self.log.keys.conversation(thread), "status")
                remaining = deadline - loop.time()
                if status != b"running" or remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(remaining, 1.0))
        finally:
            waiters = self._waiters.get(thread)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[thread]

    def end_waits(self) -> None:
        """This process begins to shut down: every `until_settled` returns now, and any
        later one at once (a `?wait=` request answers with the status as it is, instead of
        being cut when the server's grace period ends); every event stream ends after what
        it has (its listener reconnects with `Last-Event-ID`, to a replica that stays),
        instead of being cancelled with an error when the grace period ends."""
        self._waits_ended = True
        for waiters in self._waiters.values():
            for woken in waiters:
                woken.set()
        for feed in self._feeds.values():
            feed._wake()

    async def _refresh(self, feed: Feed) -> None:
        # Pokes that arrive while reading coalesce into one more read.
        while feed.dirty:
            feed.dirty = False
            raw, status = await retried(
                functools.partial(self.log.read, feed.thread, len(feed.events)),
                on_retry=functools.partial(_unread, feed.thread),
            )
            for item in raw:
                text = item.decode()
                feed.events.append((str(json.loads(text)["id"]), text))
            feed.status = status
            feed._wake()

    @contextlib.asynccontextmanager
    async def feed(self, thread: str) -> AsyncIterator[Feed]:
        """The thread's feed, loaded, for as long as the caller listens."""
        feed = self._feeds.get(thread)
        if feed is None:
            feed = self._feeds[thread] = Feed(thread)
        feed.listeners += 1
        try:
            if feed.listeners == 1 and feed.refresher is None:
                await self._listen([thread])  # before the first read: no notice is missed
            if feed.refresher is None and not feed.events:
                self.poke(thread)
            while feed.refresher is not None and not feed.refresher.done():
                await asyncio.shield(feed.refresher)
            yield feed
        finally:
            feed.listeners -= 1
            if feed.listeners == 0 and self._feeds.get(thread) is feed:
                del self._feeds[thread]
                if feed.refresher is not None:
                    feed.refresher.cancel()

    def listeners(self) -> int:
        return sum(feed.listeners for feed in self._feeds.values())

    async def stream(
        self, thread: str, start: int, keepalive_s: float, *, progress: bool = False
    ) -> AsyncIterator[ServerSentEvent]:
        """The SSE events of one listener: the log from `start`, then each new message,
        until the conversation is done, failed or gone, or this process stops; a comment while
        nothing happens.
        With `progress`, the run's news too, as it is published (see the module's doc)."""
        news: deque[tuple[str, str]] = deque()
        async with self.feed(thread) as feed, self._progress(thread, feed, news, progress):
            yield ServerSentEvent(retry=1000)
            position = start
            while True:
                changed = feed.changed  # before looking: a change after it wakes us
                while news:  # news first: an answer's pieces come before the answer
                    kind, data = news.popleft()
                    yield ServerSentEvent(event=kind, raw_data=data)
                while position < len(feed.events):
                    message_id, text = feed.events[position]
                    # The library writes the fields (and refuses a line break in an id).
                    yield ServerSentEvent(id=message_id, raw_data=text)
                    position += 1
                if feed.ended or self._waits_ended:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), keepalive_s)
                except TimeoutError:
                    yield ServerSentEvent(comment="keep-alive")

    @contextlib.asynccontextmanager
    async def _progress(
        self, thread: str, feed: Feed, news: deque[tuple[str, str]], wanted: bool
    ) -> AsyncIterator[None]:
        """While it lasts, the thread's progress news is queued on `news` and wakes `feed`.

        Subscribed before the stream reads the log, so no news published meanwhile is
        missed; one subscription per stream that asked (progress is opt-in and short-lived).
        """
        if not wanted:
            yield
            return
        pubsub = self.log.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.log.progress_channel(thread))

        def take(data: bytes | str) -> None:
            piece = json.loads(data.decode() if isinstance(data, bytes) else data)
            for kind in PROGRESS_KINDS:
                if isinstance(piece, dict) and kind in piece:
                    news.append((kind, json.dumps(piece[kind], separators=(",", ":"))))
                    feed._wake()

        # Joined while a step waits on a model: that wait is news too (a later `end` or
        # `start` on the channel comes after it, so the order holds).
        last = await self.log.redis.get(self.log.keys.model_news(thread))
        if last is not None and json.loads(last).get("llm", {}).get("phase") == "start":
            take(last)

        async def read() -> None:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    take(item["data"])

        reader = asyncio.create_task(read())
        try:
            yield
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _subscription_lost(exc: BaseException) -> None:
    if isinstance(exc, REDIS_DOWN):
        logger.warning("SSE feeds: Redis subscription lost (%s); resubscribing", exc)
    else:
        logger.error("SSE feeds: the subscription failed; resubscribing", exc_info=exc)


def _unread(thread: str, exc: BaseException) -> None:
    logger.warning("SSE feed %s: cannot read (%s); retrying", thread, exc)
