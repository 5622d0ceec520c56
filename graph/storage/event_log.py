"""Each conversation's event log in Redis: its LAM messages in the order first seen, once each.

The log (`srv:{H}:ev`, indexed by message id in `srv:{H}:evi`) is appended to by one script
(`EventLog.append`) on the conversation's slot, fenced like every write of a runner
(`graph.storage.fencing`), which also announces the thread on `srv:events` while someone
listens (`srv:{H}:listen`). With the history on, what it appended then goes to the
archivers (`srv:archive`, a key of another slot: a Redis Cluster runs no script across
two): a crash between the two loses that history entry, never the log's. A run's appends go
out off its path, in order (`Appender`). Reading the log to listeners, and the SSE fan-out
around it, is the HTTP layer's (`api.events`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.exceptions import ResponseError

from graph.storage.client import cancel_and_wait
from graph.storage.fencing import FENCE_PRELUDE, raise_if_fenced
from graph.storage.outage import retried_within
from graph.storage.server_keys import RedisKeys

__all__ = ["MODEL_NEWS_TTL_S", "Appender", "EventLog"]

logger = logging.getLogger("cpa_planner.server")
MODEL_NEWS_TTL_S = 3600

# KEYS: fence, events list, index hash, listeners (one slot: the thread's tag). ARGV: lease
# generation ("": not fenced), channel, thread, id, json, id, json, ... Appends each unseen
# message; announces the thread if anything was appended and someone listens. A runner
# whose lease generation is stale appends nothing.
# -> {appended, the log's length before, what was appended as a JSON list}
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
return {n, start, '[' .. table.concat(added, ',') .. ']'}
"""
)


class EventLog:
    """The conversations' event logs in Redis.

    `scripts` runs the append script: by default on its own, or in the checkpointer's group
    commit (`RedisSaver.call_script`), where a run's appends share the round trip of the
    checkpoint writes of the same step. `archive`: every append is also an entry of the
    history's archive stream (`srv:archive`, `api.archiver`), which waits out Redis being
    down for `write_wait_s` (CPA_REDIS_WRITE_WAIT_S), as the appends do in the group commit.
    """

    def __init__(
        self,
        redis: Any,
        keys: RedisKeys,
        scripts: Callable[[Any, list[str], list[Any]], Awaitable[Any]] | None = None,
        *,
        archive: bool = False,
        write_wait_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.archive = archive
        self.write_wait_s = write_wait_s
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
        try:
            if self._scripts is not None:
                reply = await self._scripts(self._append, keys, args)
            else:
                reply = await self._append(keys=keys, args=args)
        except ResponseError as exc:
            raise_if_fenced(exc, thread, generation)
            raise
        appended, start, added = reply
        if int(appended) and self.archive:
            entry = {"thread": thread, "start": int(start), "messages": added}
            # Another slot than the log's: a failover of its primary is waited out like the
            # run's own writes (the append is done; failing now would stop the run).
            await retried_within(
                lambda: self.redis.xadd(self.keys.archive, entry), self.write_wait_s
            )
        return int(appended)

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
