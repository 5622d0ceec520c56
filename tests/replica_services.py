"""The graph's services of the replica tests' servers (the CPA_SERVER_SERVICES hook).

The crash drill's plan (`tests.crash_driver.DRILL_PLAN`: seven `record` ToDos and one
desktop ToDo, d1) with a `record` executor that logs to a Redis list instead of a file, so
that several server processes, each running many conversations, write one record:

    CPA_TEST_RECORD_KEY   the list: "<conversation id> <event> <todo id> <pid>" lines,
                          events `pause`, `start`, `end`
    CPA_TEST_RECORD_URL   the Redis it is in (default: REDIS_URL)
    CPA_TEST_PAUSE        ToDo ids that stop before their start ...
    CPA_TEST_HOLD         ... or between start and end, until the key `<record>:go:<todo>`
                          exists (usually never: the test kills or stops the process there)

Each result names the process that produced it (`pid`), so a test can tell whose result
a checkpoint holds.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio as aioredis

from graph.config import Settings
from graph.executor_registry import ExecutorCall
from graph.services import Services
from tests.crash_driver import drill_planner

RECORD_KEY_ENV = "CPA_TEST_RECORD_KEY"
RECORD_URL_ENV = "CPA_TEST_RECORD_URL"
PAUSE_ENV = "CPA_TEST_PAUSE"
HOLD_ENV = "CPA_TEST_HOLD"
DELAY_S = 0.05


def _ids(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


def gate_key(record_key: str, todo_id: str) -> str:
    """The key that lets a paused or held ToDo go on."""
    return f"{record_key}:go:{todo_id}"


class RedisRecordExecutor:
    """Sleeps a little and records every start and end in a Redis list."""

    name = "record"
    description = "records its execution in Redis (replica-test executor)"
    receiver: str | None = None
    effect = "none"

    def __init__(self, url: str, key: str, pause: frozenset[str], hold: frozenset[str]) -> None:
        self.url = url
        self.key = key
        self.pause = pause
        self.hold = hold
        self._client: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.url)
        return self._client

    async def _log(self, call: ExecutorCall, event: str) -> None:
        line = f"{call.conversation_id} {event} {call.todo.id} {os.getpid()}"
        await self.client.rpush(self.key, line)

    async def _wait_gate(self, todo_id: str) -> None:
        while not await self.client.exists(gate_key(self.key, todo_id)):  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # a key in Redis, polled

    async def __call__(self, call: ExecutorCall) -> Any:
        todo_id = call.todo.id
        if todo_id in self.pause:
            await self._log(call, "pause")
            await self._wait_gate(todo_id)
        await self._log(call, "start")
        await asyncio.sleep(DELAY_S)
        if todo_id in self.hold:
            await self._wait_gate(todo_id)
        await self._log(call, "end")
        return {
            "did": todo_id,
            "saw": sorted(call.inputs.get("dependencies", {})),
            "pid": os.getpid(),
        }


def replica_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the replica tests' servers."""
    from graph.builder import make_services

    url = os.environ.get(RECORD_URL_ENV) or settings.redis_url or ""
    recorder = RedisRecordExecutor(
        url,
        os.environ[RECORD_KEY_ENV],
        _ids(os.environ.get(PAUSE_ENV)),
        _ids(os.environ.get(HOLD_ENV)),
    )
    return make_services(
        settings, chat_models={"planner": drill_planner()}, extra_executors=[recorder]
    )


replica_services.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test
