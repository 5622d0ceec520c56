"""template: text from a template, no LLM (`{request}` and `{<todo id>}` are filled in)."""

from __future__ import annotations

import string
from typing import Any

from graph.executor_registry import ExecutorCall, ExecutorError


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise ExecutorError("bad_template", f"the template names {{{key}}}, which is not known")


class TemplateExecutor:
    name = "template"
    description = (
        "composes a text from inputs.text without an LLM; {request} and {<todo id>} are "
        "replaced by the request and by the outputs of the ToDos it depends on"
    )
    receiver: str | None = None
    effect = "none"  # text inside the conversation
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                "description": "the text to compose; {request} stands for the request, {t1}, "
                "{t2}, ... for the outputs of the steps it depends on",
            }
        },
        "required": ["text"],
        "additionalProperties": True,
    }
    returns = "the composed text"

    async def __call__(self, call: ExecutorCall) -> Any:
        text = call.inputs.get("text")
        if not isinstance(text, str):
            raise ExecutorError("bad_inputs", "the template executor needs inputs.text")
        values = _Values(request=call.request)
        for todo_id, output in call.inputs.get("dependencies", {}).items():
            values[todo_id] = output if isinstance(output, str) else str(output)
        try:
            return string.Formatter().vformat(text, (), values)
        except (ValueError, IndexError) as exc:
            raise ExecutorError("bad_template", f"cannot fill the template: {exc}") from None
