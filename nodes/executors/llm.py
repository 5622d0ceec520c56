"""llm: writes text with the configured chat model (draft, summarise, answer).

Its output is text fit to use (`graph.text_check`): text cut off at the token limit, empty
or looping is a failed attempt (`llm_truncated`, `llm_bad_output`), tried again as the
ToDo's retries allow, asked to be brief this time; a step that never gets such text fails,
so a plan of such steps does not end as done.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage

from graph.executor_registry import ExecutorCall, ExecutorError
from graph.llm import LLMCallError, LLMError, LLMOutputError
from graph.text_check import unusable
from prompts.templates import AGAIN, LLM_EXECUTOR_SYSTEM

#: How long a later attempt's text may be, in words (said to the model).
AGAIN_WORDS = 150


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
        if call.attempt > 1:
            last = "the last attempt's text could not be used"
            messages.append(HumanMessage(AGAIN.format(why=last, words=AGAIN_WORDS)))
        try:
            text = await call.models.text("executor", messages, what="run an llm ToDo", whole=True)
        except LLMError as exc:
            retryable = isinstance(exc, LLMCallError | LLMOutputError)
            raise ExecutorError(exc.code, str(exc), retryable=retryable) from None
        why = unusable(text)
        if why is not None:
            raise ExecutorError(
                "llm_bad_output", f"the executor model's text cannot be used: {why}", retryable=True
            )
        return text.strip()
