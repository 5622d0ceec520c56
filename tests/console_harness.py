"""The web console's test server: `tests.server_harness`'s, with a `pause` executor.

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

from graph.builder import make_services
from graph.config import Settings
from graph.executors import ExecutorCall
from graph.services import Services
from tests.scripted import ConstantChatModel, steps
from tests.server_harness import CHORE_PLAN, ROOT

REGISTRY = ROOT / "tests" / "data" / "console_intents.yaml"
SERVICES = "tests.console_harness:console_services"


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
    return make_services(
        settings,
        chat_models={
            "router": ConstantChatModel(
                answers={"IntentChoice": {"intent": "other_task", "confidence": 0.9}}
            ),
            "planner": ConstantChatModel(answers={"PlanDraft": steps(CHORE_PLAN)}),
        },
        extra_executors=[PauseExecutor()],
    )


def console_env(redis_url: str, directory: Path, **extra: str) -> dict[str, str]:
    """`server_env` with the console's registry and services."""
    from tests.server_harness import server_env

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
SHIPPED_SERVICES = "tests.console_harness:shipped_services"


def shipped_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the shipped set-up: scripted models, nothing else."""
    return make_services(
        settings,
        chat_models={
            "router": ConstantChatModel(
                answers={"IntentChoice": {"intent": "other_task", "confidence": 0.9}}
            ),
            "planner": ConstantChatModel(answers={"PlanDraft": steps(SHIPPED_PLAN)}),
        },
    )


def shipped_env(redis_url: str, directory: Path) -> dict[str, str]:
    """`server_env` with the packaged intent registry (blank: the default) and no test
    executor."""
    from tests.server_harness import server_env

    return server_env(
        redis_url, directory, CPA_INTENTS_PATH="", CPA_SERVER_SERVICES=SHIPPED_SERVICES
    )
