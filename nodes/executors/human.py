"""human: asks the person; the answer is the ToDo's output."""

from __future__ import annotations

from typing import Any

from langgraph.types import interrupt

from graph.executors import ExecutorCall
from nodes.executors.answers import read_answer


class HumanExecutor:
    name = "human"
    description = "asks the user a question or for a decision; the answer is the output"
    receiver: str | None = "user"
    interrupts = True

    async def __call__(self, call: ExecutorCall) -> Any:
        return read_answer(call, interrupt(call.assign.to_dict()))
