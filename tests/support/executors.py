"""The recording executor: does a piece of work, and writes down what it did and when.

One executor for every test that needs to see ToDos run: it records `start` and `end` (and
`fail`, `pause`) in a journal, sleeps a while (per ToDo, its `delay` input, or a default),
fails the ToDos it is told to (a retryable `ExecutorError`), and stops at a gate before or
inside the ToDos it is told to pause or hold, until the test opens the gate. The journal is
where the test reads it: a list in this process (`MemoryJournal`), a file several processes
append to and that survives a crash (`FileJournal`), or a Redis list shared by replicas
(`RedisJournal`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis

from graph.executor_registry import ExecutorCall, ExecutorError

GATE_POLL_S = 0.02


class Journal(Protocol):
    """Where a `RecordingExecutor` writes, and the gates that let a ToDo go on."""

    async def write(self, call: ExecutorCall, event: str) -> None: ...

    async def is_open(self, todo_id: str) -> bool: ...


@dataclass
class MemoryJournal:
    """(event, ToDo id) pairs in this process; its gates are always open."""

    events: list[tuple[str, str]] = field(default_factory=list)

    async def write(self, call: ExecutorCall, event: str) -> None:
        self.events.append((event, call.todo.id))

    async def is_open(self, todo_id: str) -> bool:
        return True


def write_line(path: Path, line: str) -> None:
    """Append one line and make it durable before going on (the process may die next)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def gate(path: Path, todo_id: str) -> Path:
    """The file that lets a paused or held ToDo of a `FileJournal` go on."""
    return path.with_name(f"{path.name}.go.{todo_id}")


@dataclass
class FileJournal:
    """ "<event> <ToDo id> <pid>" lines in a file; a gate is a file beside it."""

    path: Path

    async def write(self, call: ExecutorCall, event: str) -> None:
        write_line(self.path, f"{event} {call.todo.id} {os.getpid()}")

    async def is_open(self, todo_id: str) -> bool:
        return gate(self.path, todo_id).exists()


def gate_key(key: str, todo_id: str) -> str:
    """The key that lets a paused or held ToDo of a `RedisJournal` go on."""
    return f"{key}:go:{todo_id}"


@dataclass
class RedisJournal:
    """ "<conversation> <event> <ToDo id> <pid>" lines in a Redis list; a gate is a key."""

    url: str
    key: str
    _client: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.url)
        return self._client

    async def write(self, call: ExecutorCall, event: str) -> None:
        line = f"{call.conversation_id} {event} {call.todo.id} {os.getpid()}"
        await self.client.rpush(self.key, line)

    async def is_open(self, todo_id: str) -> bool:
        return bool(await self.client.exists(gate_key(self.key, todo_id)))


@dataclass
class RecordingExecutor:
    """Sleeps, records every start and end, fails, pauses and holds where told to."""

    name: str = "work"
    description: str = "does a piece of work (test executor)"
    receiver: str | None = None
    # What its steps do (`graph.approval`): nothing outside the conversation, so its plans
    # run without asking unless a test says otherwise (e.g. effect="change").
    effect: str = "none"
    journal: Journal = field(default_factory=MemoryJournal)
    delay: float = 0.0  # a ToDo's sleep unless `delays` or its `delay` input says otherwise
    delays: Mapping[str, float] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)
    pause: frozenset[str] = frozenset()  # stop before the start, until the gate opens
    hold: frozenset[str] = frozenset()  # stop between start and end, until the gate opens
    with_pid: bool = False  # the result names the process that produced it

    @property
    def events(self) -> list[tuple[str, str]]:
        """What it did, in order (a `MemoryJournal`'s)."""
        assert isinstance(self.journal, MemoryJournal)
        return self.journal.events

    def runs(self, todo_id: str) -> int:
        return self.events.count(("start", todo_id))

    async def _wait_gate(self, todo_id: str) -> None:
        # Polled: the gate is opened by another process (a file, a Redis key).
        while not await self.journal.is_open(todo_id):  # noqa: ASYNC110
            await asyncio.sleep(GATE_POLL_S)

    async def __call__(self, call: ExecutorCall) -> Any:
        todo_id = call.todo.id
        if todo_id in self.pause:
            await self.journal.write(call, "pause")
            await self._wait_gate(todo_id)
        await self.journal.write(call, "start")
        await asyncio.sleep(self.delays.get(todo_id, call.todo.inputs.get("delay", self.delay)))
        if todo_id in self.hold:
            await self._wait_gate(todo_id)
        if todo_id in self.fail:
            await self.journal.write(call, "fail")
            raise ExecutorError("broken", f"{todo_id} is broken", retryable=True)
        await self.journal.write(call, "end")
        result = {"did": todo_id, "saw": sorted(call.inputs.get("dependencies", {}))}
        return {**result, "pid": os.getpid()} if self.with_pid else result
