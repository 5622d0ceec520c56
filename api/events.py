"""Each conversation's event log in Redis, fanned out to every SSE listener of the process.

The log (`srv:ev:H`, indexed by message id in `srv:evi:H`) holds the conversation's LAM
messages in the order first seen, each once: the runner appends each message as it
streams, and the whole view again when a run stops (`Hub.finish`). Every append is
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

Progress is passing news, not part of the log: which step waits on a model (`llm`) and the
answer's pieces as the model writes it (`token`). The runner publishes it on the thread's
own channel (`srv:ev:H:progress`), so a stream on any replica can pass it on; a stream asked
for it (`?progress=true`) subscribes while it lasts and sends it as SSE events of those
names, without an `id:` (the Last-Event-ID stays the last LAM message's). Nobody listening,
nothing is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi.sse import ServerSentEvent
from redis.exceptions import ResponseError

from api.models import FINAL_STATUSES
from graph.storage.errors import REDIS_DOWN
from graph.storage.fencing import FENCE_PRELUDE, raise_if_fenced
from graph.storage.server_keys import RedisKeys

logger = logging.getLogger("cpa_planner.server")
#: The kinds of progress news a stream passes on (the key of the run's custom event).
PROGRESS_KINDS = ("llm", "token")
MODEL_NEWS_TTL_S = 3600
# How long `srv:listen:H` says "someone listens" without being renewed (every third of it).
LISTENING_MS = 30_000

# KEYS: fence, events list, index hash, listeners[, archive stream]. ARGV: lease generation
# ("": not fenced), channel, thread, id, json, id, json, ... Appends each unseen message;
# announces the thread if anything was appended and someone listens; with the history on,
# hands what was appended to the archivers in the same step (`api.archiver`). A runner
# whose lease generation is stale appends nothing.
_APPEND_LUA = (
    FENCE_PRELUDE
    + """
local n = 0
local start = redis.call('LLEN', KEYS[2])
local added = {}
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], redis.call('LLEN', KEYS[2])) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    n = n + 1
    added[n] = ARGV[i + 1]
  end
end
if n > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
if n > 0 and #KEYS > 4 then
  redis.call('XADD', KEYS[5], '*', 'thread', ARGV[3], 'start', start,
    'messages', '[' .. table.concat(added, ',') .. ']')
end
return n
"""
)


class EventLog:
    """The conversations' event logs in Redis.

    `scripts` runs the append script: by default on its own, or in the checkpointer's group
    commit (`RedisSaver.call_script`), where a run's appends share the round trip of the
    checkpoint writes of the same step. `archive`: every append is also an entry of the
    history's archive stream (`srv:archive`, `api.archiver`).
    """

    def __init__(
        self,
        redis: Any,
        keys: RedisKeys,
        scripts: Callable[[Any, list[str], list[Any]], Awaitable[Any]] | None = None,
        *,
        archive: bool = False,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.archive = archive
        self._append = redis.register_script(_APPEND_LUA)
        self._scripts = scripts

    async def append(
        self, thread: str, messages: list[dict[str, Any]], generation: str = ""
    ) -> int:
        """Append the messages not in the log yet, in order; the number appended.

        A runner passes its lease `generation`: FencedError if it is no longer current.
        """
        args: list[str] = [generation, self.keys.events_channel, thread]
        for message in messages:
            args += [str(message["id"]), json.dumps(message, separators=(",", ":"))]
        if len(args) == 3:
            return 0
        keys = [
            self.keys.fence(thread),
            self.keys.events(thread),
            self.keys.event_index(thread),
            self.keys.listening(thread),
        ]
        if self.archive:
            keys.append(self.keys.archive)
        try:
            if self._scripts is not None:
                return int(await self._scripts(self._append, keys, args))
            return int(await self._append(keys=keys, args=args))
        except ResponseError as exc:
            raise_if_fenced(exc, thread, generation)
            raise

    def appender(self, thread: str, generation: str = "") -> Appender:
        """Appends of one run, in order, without making the run wait for each (below)."""
        return Appender(self, thread, generation)

    def progress_channel(self, thread: str) -> str:
        return f"{self.keys.events(thread)}:progress"

    async def publish_progress(self, thread: str, news: dict[str, Any]) -> None:
        """Pass news from the run on to the streams that asked for it (any replica).

        Model news is also kept (for an hour at most), for a stream that joins mid-wait."""
        text = json.dumps(news, default=str)
        try:
            pipe = self.redis.pipeline(transaction=False)
            if "llm" in news:
                pipe.set(self.keys.model_news(thread), text, ex=MODEL_NEWS_TTL_S)
            pipe.publish(self.progress_channel(thread), text)
            await pipe.execute()
        except Exception as exc:  # passing news: never worth stopping the run for
            logger.debug("thread %s: progress not published: %s", thread, exc)

    async def index_of(self, thread: str, message_id: str) -> int | None:
        index = await self.redis.hget(self.keys.event_index(thread), message_id)
        return int(index) if index is not None else None

    async def read(self, thread: str, start: int) -> tuple[list[bytes], str | None]:
        """The log from `start` on, and the conversation's status (None: it is gone)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(self.keys.events(thread), start, -1)
        pipe.hget(self.keys.conversation(thread), "status")
        raw, status = await pipe.execute()
        return cast(list[bytes], raw), status.decode() if status is not None else None


class Appender:
    """A run's messages appended to its log in order, off the run's path.

    A run yields a message at almost every step; waiting for a round trip per message
    would hold the run up, and each would be a script call of its own. `add` queues the
    message; one sender appends what is queued, all of it in one call, while the run goes
    on (messages that come while a call is in flight go in the next one). `flush` waits
    until everything added is in the log, and raises what an append raised (FencedError:
    the lease was lost; the run's own fenced writes stop it at its next step anyway).
    """

    def __init__(self, log: EventLog, thread: str, generation: str) -> None:
        self.log = log
        self.thread = thread
        self.generation = generation
        self._queued: list[dict[str, Any]] = []
        self._sender: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def add(self, message: dict[str, Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queued.append(message)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name=f"append:{self.thread}")

    async def _send(self) -> None:
        while self._queued and self._error is None:
            batch, self._queued = self._queued, []
            try:
                await self.log.append(self.thread, batch, self.generation)
            except Exception as exc:
                self._error = exc

    async def flush(self) -> None:
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Stop sending (the run ended early: cancelled, fenced, or it raised)."""
        if self._sender is not None:
            await cancel_and_wait(self._sender)


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
        delay = 0.2
        while True:
            pubsub = self.log.redis.pubsub(ignore_subscribe_messages=True)
            try:
                status_channel = self.log.keys.status_channel.encode()
                await pubsub.subscribe(self.log.keys.events_channel, status_channel)
                self._subscribed.set()
                delay = 0.2
                # Notices sent while unsubscribed are lost: every feed reads afresh.
                self.poke_all()
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
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                logger.warning("SSE feeds: Redis subscription lost (%s); resubscribing", exc)
            except Exception:
                logger.exception("SSE feeds: the subscription failed; resubscribing")
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

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
            try:
                raw, status = await self.log.read(feed.thread, len(feed.events))
            except REDIS_DOWN as exc:
                logger.warning("SSE feed %s: cannot read (%s); retrying", feed.thread, exc)
                await asyncio.sleep(1.0)
                feed.dirty = True
                continue
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
