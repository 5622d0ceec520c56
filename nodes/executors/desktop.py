"""desktop: the CPA Desktop AI performs the ToDo; the conversation waits for its answer."""

from __future__ import annotations

from typing import Any

from graph.executor_registry import ExecutorCall
from nodes.executors.asking import ask

DESKTOP = "cpa-desktop"


class DesktopExecutor:
    name = "desktop"
    description = (
        "hands the ToDo to the desktop assistant, which operates the user's applications "
        "(calendar, mail, files, reminders, any app) and reports the result"
    )
    receiver: str | None = DESKTOP
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "request": {"type": "string", "description": "what to do, in the user's words"}
        },
        "additionalProperties": True,
    }
    returns = "what the desktop assistant reports"
    # The desktop agent offers its actions as tools (`offer`); steps that run one come here.
    runs_tools = True
    # No `effect`: the desktop agent may read or change anything, so a step is taken to
    # change something unless a plan template declares it (`graph.approval`).
    interrupts = True

    async def __call__(self, call: ExecutorCall) -> Any:
        # The `assign` is the question; it waits, checkpointed, until `done` or `failure`.
        return ask(call)
