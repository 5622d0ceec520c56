"""human: asks the person; the answer is the ToDo's output."""

from __future__ import annotations

from typing import Any

from graph.executor_registry import ExecutorCall
from nodes.executors.asking import ask


class HumanExecutor:
    name = "human"
    description = "asks the user a question or for a decision; the answer is the output"
    receiver: str | None = "user"
    effect = "none"  # asks the person; changes nothing by itself
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "question": {"type": "string", "description": "the question, if the title is not it"}
        },
        "additionalProperties": True,
    }
    returns = "the person's answer"
    interrupts = True

    async def __call__(self, call: ExecutorCall) -> Any:
        return ask(call)
