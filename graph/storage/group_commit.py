"""Group commit: script calls issued while others are in flight go out together.

A round trip is the main cost of a checkpoint, and LangGraph issues a task's writes and the
next checkpoint concurrently; the server's event log appends of the same step join them
(`graph.storage.event_log`). Calls that arrive while one is on the wire queue, and go out
together in one pipeline (one round trip; each script stays atomic, order is kept). Every
caller still awaits its own call's reply or error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

__all__ = ["GroupCommit"]

_Call = tuple[AsyncScript, list[str], list[Any], "asyncio.Future[Any]"]


class GroupCommit:
    """The script calls of one client, sent in batches of whatever is in flight."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._queue: list[_Call] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """Run a script registered on the client, in the group commit.

        It goes out with the checkpoint writes in flight at that moment (one round trip for
        all), keeps its own atomicity and its place in the order, and its result or error
        (a `ResponseError`) comes back to this caller alone.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                if len(batch) == 1:
                    script, keys, args, _ = batch[0]
                    results: list[Any] = [await script(keys=keys, args=args)]
                else:
                    results = await self._pipelined(batch)
            except BaseException as exc:
                results = [exc] * len(batch)
            for (*_, future), result in zip(batch, results, strict=True):
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _pipelined(self, batch: list[_Call]) -> list[Any]:
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                # The server lost its script cache (a restart): load, then send again.
                # Scripts are idempotent per checkpoint and write, so a resend is harmless.
                for script in {item[0] for item in batch}:
                    await self.client.script_load(script.script)
                continue
            return list(results)
        return list(results)
