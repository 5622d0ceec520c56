"""llm: writes text with the configured chat model (draft, summarise, answer)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from graph.executors import ExecutorCall, ExecutorError
from graph.llm import LLMCallError, LLMError
from prompts.templates import LLM_EXECUTOR_SYSTEM


class LLMExecutor:
    name = "llm"
    description = (
        "writes text with the language model: drafts, summaries, answers, given the ToDo "
        "and the outputs of the ToDos it depends on"
    )
    receiver: str | None = None
    effect = "none"  # text inside the conversation
    # Nothing to fill in: the step's title and description say what to write.
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {},
        "additionalProperties": True,
    }
    returns = "the text it wrote"

    async def __call__(self, call: ExecutorCall) -> Any:
        inputs = json.dumps(call.inputs, ensure_ascii=False, default=str)
        messages = [
            SystemMessage(
                LLM_EXECUTOR_SYSTEM.format(
                    request=call.request,
                    title=call.todo.title,
                    description=call.todo.description,
                )
            ),
            HumanMessage(f"Inputs (with the dependencies' outputs): {inputs}"),
        ]
        try:
            return await call.models.text("executor", messages, what="run an llm ToDo")
        except LLMError as exc:
            retryable = isinstance(exc, LLMCallError)
            raise ExecutorError(exc.code, str(exc), retryable=retryable) from None
