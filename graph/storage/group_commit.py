"""Group commit: script calls issued while others are in flight go out together.

A round trip is the main cost of a checkpoint, and LangGraph issues a task's writes and the
next checkpoint concurrently; the server's event log appends of the same step join them
(`graph.storage.event_log`). Calls that arrive while one is on the wire queue, and go out
together in one pipeline (one round trip; each script stays atomic, order is kept). Every
caller still awaits its own call's reply or error.

A call may bring commands to send just before its script (the checkpointer's index entries,
`graph.storage.base`): they go out in the same round trip, in front of it, not atomically
with it (a Redis Cluster runs a script on one slot only); an error of theirs is the call's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

__all__ = ["GroupCommit"]

_Call = tuple[AsyncScript, list[str], list[Any], Sequence[tuple[Any, ...]], "asyncio.Future[Any]"]


class GroupCommit:
    """The script calls of one client, sent in batches of whatever is in flight."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._queue: list[_Call] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[Any],
        before: Sequence[tuple[Any, ...]] = (),
    ) -> Any:
        """Run a script registered on the client, in the group commit.

        It goes out with the checkpoint writes in flight at that moment (one round trip for
        all), keeps its own atomicity and its place in the order, and its result or error
        (a `ResponseError`) comes back to this caller alone. `before`: commands (as for
        `execute_command`) sent just before the script; the first error among them and the
        script is the call's.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, before, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                if len(batch) == 1 and not batch[0][3]:
                    script, keys, args, _, _ = batch[0]
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
            for script, keys, args, before, _ in batch:
                for command in before:
                    pipe.execute_command(*command)
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies = list(await pipe.execute(raise_on_error=False))
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                # The server lost its script cache (a restart): load, then send again.
                # Scripts are idempotent per checkpoint and write, and so are the commands
                # sent before them (the checkpointer's SADDs): a resend is harmless.
                for script in {item[0] for item in batch}:
                    await self.client.script_load(script.script)
                continue
            break
        results: list[Any] = []
        for _, _, _, before, _ in batch:
            mine, replies = replies[: len(before) + 1], replies[len(before) + 1 :]
            errors = [r for r in mine if isinstance(r, BaseException)]
            results.append(errors[0] if errors else mine[-1])
        return results
