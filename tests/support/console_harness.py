"""The web console's test server: `tests.support.server_harness`'s, with a `pause` executor.

`console_services` is the CPA_SERVER_SERVICES hook; with CPA_INTENTS_PATH set to
`REGISTRY` (tests/data/console_intents.yaml) the server plans "... board pack ..." as two
ToDos in parallel (`pause`, `template`) and a `desktop` ToDo after them that needs approval.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from graph.config import Settings
from graph.executor_registry import ExecutorCall
from graph.services import Services
from tests.support.server_harness import CHORE_PLAN, ROOT
from tests.support.services import scripted_services

REGISTRY = ROOT / "tests" / "data" / "console_intents.yaml"
SERVICES = "tests.support.console_harness:console_services"


class PauseExecutor:
    """Takes `inputs.seconds` (at most 5) to do nothing: a bar of some length on the timeline."""

    name = "pause"
    description = "waits a moment, then says so (test executor)"
    receiver: str | None = None
    effect = "none"

    async def __call__(self, call: ExecutorCall) -> Any:
        seconds = min(float(call.todo.inputs.get("seconds", 0)), 5.0)
        await asyncio.sleep(seconds)
        return f"paused {seconds:g} s"


def console_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the console's test server."""
    return scripted_services(
        settings, plan=CHORE_PLAN, router_intent="other_task", executors=[PauseExecutor()]
    )


def console_env(redis_url: str, directory: Path, **extra: str) -> dict[str, str]:
    """`server_env` with the console's registry and services."""
    from tests.support.server_harness import server_env

    return server_env(
        redis_url,
        directory,
        CPA_INTENTS_PATH=str(REGISTRY),
        CPA_SERVER_SERVICES=SERVICES,
        **extra,
    )
