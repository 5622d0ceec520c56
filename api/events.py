"""Each conversation's event log in Redis, and its Server-Sent Events stream.

The log (`srv:ev:C`, indexed by message id in `srv:evi:C`) holds the conversation's LAM
messages in the order first seen, each once. The runner appends what it streams while
someone listens in this process; everything else is appended from the conversation's view
(`Hub.sync_events`). Listeners are woken in process, and poll for runs elsewhere.

Progress is passing news, not part of the log: which step waits on a model (`llm`) and the
answer's pieces as the model writes them (`token`). The runner publishes it on the Redis
channel `srv:ev:C:progress`, so a stream on any replica can pass it on; a stream asked for
it (`?progress=true`) sends it as SSE events of those names, without an `id:` (the
Last-Event-ID stays the last LAM message's). Nobody listening, nothing is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from api.models import FINAL_STATUSES
from api.redis_keys import RedisKeys

logger = logging.getLogger(__name__)
#: The kinds of progress news a stream passes on (the key of the run's custom event).
PROGRESS_KINDS = ("llm", "token")

if TYPE_CHECKING:
    from api.hub import Hub

# KEYS: events list, index hash. ARGV: id, json, id, json, ... Appends each unseen message.
_APPEND_LUA = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], redis.call('LLEN', KEYS[1])) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    n = n + 1
  end
end
return n
"""


class EventLog:
    """The conversations' event logs, and the in-process listeners waiting on them."""

    def __init__(self, redis: Any, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._append = redis.register_script(_APPEND_LUA)
        self._listeners: dict[str, set[asyncio.Event]] = {}

    def _keys(self, cid: str) -> list[str]:
        return [self.keys.events(cid), self.keys.event_index(cid)]

    async def append(self, cid: str, messages: list[dict[str, Any]]) -> None:
        """Append the messages not in the log yet, in order."""
        args: list[str] = []
        for message in messages:
            args += [str(message["id"]), json.dumps(message, separators=(",", ":"))]
        if args:
            await self._append(keys=self._keys(cid), args=args)

    async def index_of(self, cid: str, message_id: str) -> int | None:
        index = await self.redis.hget(self.keys.event_index(cid), message_id)
        return int(index) if index is not None else None

    async def read_from(self, cid: str, start: int) -> list[bytes]:
        return cast(list[bytes], await self.redis.lrange(self.keys.events(cid), start, -1))

    def listen(self, cid: str) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.setdefault(cid, set()).add(event)
        return event

    def unlisten(self, cid: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get(cid)
        if listeners is not None:
            listeners.discard(event)
            if not listeners:
                del self._listeners[cid]

    def listening(self, cid: str) -> bool:
        return bool(self._listeners.get(cid))

    def notify(self, cid: str) -> None:
        for event in self._listeners.get(cid, ()):
            event.set()

    def progress_channel(self, cid: str) -> str:
        return f"{self.keys.events(cid)}:progress"

    async def publish_progress(self, cid: str, news: dict[str, Any]) -> None:
        """Pass news from the run on to the streams that asked for it (any replica)."""
        try:
            await self.redis.publish(self.progress_channel(cid), json.dumps(news, default=str))
        except Exception as exc:  # passing news: never worth stopping the run for
            logger.debug("conversation %s: progress not published: %s", cid, exc)


async def start_position(hub: Hub, cid: str, last_event_id: str | None) -> int:
    """Where a stream starts: right after `last_event_id`, or at the first message."""
    if not last_event_id:
        return 0
    index = await hub.events.index_of(cid, last_event_id)
    if index is None:
        # Not yet in the log (or never was): make sure the log is current, then look again.
        await hub.sync_events(cid)
        index = await hub.events.index_of(cid, last_event_id)
    return index + 1 if index is not None else 0


async def sse_stream(
    hub: Hub, cid: str, start: int, *, progress: bool = False
) -> AsyncIterator[str]:
    """SSE body: the event log from `start`, then new messages until done or failed.

    Waits on in-process notifications from the runner, and polls (cheaply) for runs
    elsewhere. A client that goes away cancels this generator: nothing is left behind.
    With `progress`, the run's news comes too, as it is published (see the module's doc).
    """
    config = hub.config
    listener = hub.events.listen(cid)
    news: deque[tuple[str, str]] = deque()
    reader = await _follow_progress(hub, cid, news, listener) if progress else None
    position = start
    last_write = time.monotonic()
    last_sync = 0.0
    try:
        yield "retry: 1000\n\n"
        while True:
            listener.clear()
            status: str | None = "running"
            now = time.monotonic()
            # The runner appends what it streams; a view is needed for the rest (runs in
            # other processes, the end of a run), at most once per poll interval while busy.
            if not hub.busy(cid) or now - last_sync >= config.sse_poll_s:
                status = await hub.sync_events(cid)
                last_sync = now
            while news:  # news first: an answer's pieces come before the answer
                kind, data = news.popleft()
                yield f"event: {kind}\ndata: {data}\n\n"
                last_write = time.monotonic()
            for raw in await hub.events.read_from(cid, position):
                message_id = json.loads(raw)["id"]
                yield f"id: {message_id}\ndata: {raw.decode()}\n\n"
                position += 1
                last_write = time.monotonic()
            if status is None or status in FINAL_STATUSES:
                return
            timeout = min(config.sse_poll_s, config.sse_keepalive_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.wait(), timeout)
            if time.monotonic() - last_write >= config.sse_keepalive_s:
                yield ": keep-alive\n\n"
                last_write = time.monotonic()
    finally:
        hub.events.unlisten(cid, listener)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def _follow_progress(
    hub: Hub, cid: str, news: deque[tuple[str, str]], listener: asyncio.Event
) -> asyncio.Task[None]:
    """Subscribe to the conversation's progress (before the stream reads the log, so no
    news published meanwhile is missed); a task queues each piece and wakes the stream."""
    pubsub = hub.redis.pubsub()
    await pubsub.subscribe(hub.events.progress_channel(cid))

    async def read() -> None:
        try:
            async for item in pubsub.listen():
                if item.get("type") != "message":
                    continue
                data = item["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                piece = json.loads(text)
                for kind in PROGRESS_KINDS:
                    if isinstance(piece, dict) and kind in piece:
                        news.append((kind, json.dumps(piece[kind], separators=(",", ":"))))
                        listener.set()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    return asyncio.create_task(read())
