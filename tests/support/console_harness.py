"""The web console's test server: `tests.support.server_harness`'s, with a `pause` executor.

`console_services` is the CPA_SERVER_SERVICES hook; with CPA_INTENTS_PATH set to
`REGISTRY` (tests/data/console_intents.yaml) the server plans "... board pack ..." as two
ToDos in parallel (`pause`, `template`) and a `desktop` ToDo after them that needs approval.

`shipped_env` is a server with what the product ships, for the docs' screenshots: the
packaged intents and executors, no test executor; only the planner is a scripted model (no
LLM here), which plans `SHIPPED_REQUEST` (no intent fits it) as `SHIPPED_PLAN`.
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


SHIPPED_REQUEST = "Get the board pack for Thursday ready and email it to the board"
SHIPPED_PLAN: dict[str, Any] = {
    "goal": "The board pack for Thursday, emailed to the board",
    "todos": [
        {
            "id": "t1",
            "title": "Draft the agenda",
            "executor": "template",
            "inputs": {"text": "Agenda: figures of the quarter, outlook, questions"},
        },
        {
            "id": "t2",
            "title": "Write the cover note",
            "executor": "template",
            "inputs": {"text": "Dear members of the board, please find the pack attached."},
        },
        {
            "id": "t3",
            "title": "Email the pack to the board",
            "executor": "desktop",
            "inputs": {"request": SHIPPED_REQUEST},
            "depends_on": ["t1", "t2"],
            "requires_approval": True,
        },
    ],
}
SHIPPED_SERVICES = "tests.support.console_harness:shipped_services"


def shipped_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the shipped set-up: scripted models, nothing else."""
    return scripted_services(settings, plan=SHIPPED_PLAN, router_intent="other_task")


def shipped_env(redis_url: str, directory: Path) -> dict[str, str]:
    """`server_env` with the packaged intent registry (blank: the default) and no test
    executor."""
    from tests.support.server_harness import server_env

    return server_env(
        redis_url, directory, CPA_INTENTS_PATH="", CPA_SERVER_SERVICES=SHIPPED_SERVICES
    )
