"""The chat models of the tests: no LLM anywhere, every answer written in the test.

ScriptedChatModel    answers in order from a script (langchain-core's fake chat model,
                     plus scripted structured output); records every call
ConstantChatModel    answers each structured call by its schema's name, as often as
                     asked (servers and subprocesses that run many conversations)
UncallableChatModel  fails the test if anything calls it (rules and templates need none)
steps()              a plan written with ToDo ids, as the planner model writes it

A scripted model given `stream_chars` streams its structured answers too, as a provider
streams structured output: the JSON text in pieces of that many characters, each as
`{"raw": AIMessageChunk}`, then `{"parsed", "parsing_error"}`; `between(text so far)`, when
given, is awaited before each piece (a test holds the stream there, or records progress).

Structured output follows langchain's protocol for `include_raw=True` (what `graph.llm`
asks for): {"raw": AIMessage, "parsed": dict or None, "parsing_error": exception or None}.
A scripted structured answer is a dict (the model's JSON), a string (its raw text, parsed
here if it is JSON), an AIMessage (e.g. one cut off: `cut_off(...)`) or an exception.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda
from langchain_core.runnables.utils import AddableDict
from pydantic import BaseModel, PrivateAttr


def schema_name(schema: Any) -> str | None:
    """A structured-output schema's name: a pydantic class's, or a JSON Schema's title."""
    if isinstance(schema, Mapping):
        return str(schema.get("title")) if schema.get("title") else None
    return getattr(schema, "__name__", None)


def structured_reply(schema: Any, item: Any, include_raw: bool) -> Any:
    """What a chat model's structured output gives for the scripted answer `item`."""
    if isinstance(item, Exception):
        raise item
    if isinstance(item, AIMessage):
        raw = item
    elif isinstance(item, BaseModel):
        raw = AIMessage(item.model_dump_json())
    elif isinstance(item, str):
        raw = AIMessage(item)
    else:
        raw = AIMessage(json.dumps(item))
    parsed: Any = None
    error: Exception | None = None
    try:
        parsed = json.loads(raw.text) if raw.text.strip() else None
    except json.JSONDecodeError as exc:
        error = exc
    if include_raw:
        return {"raw": raw, "parsed": parsed, "parsing_error": error}
    if error is not None:
        raise error
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_validate(parsed)
    return parsed


def cut_off(text: str) -> AIMessage:
    """An answer that stopped at the token limit (`finish_reason` "length")."""
    return AIMessage(text, response_metadata={"finish_reason": "length"})


def steps(plan: Mapping[str, Any]) -> dict[str, Any]:
    """A plan written with ids (`todos`, `depends_on`) as the planner model writes it: numbered
    `steps`, `after` by number, each naming its `tool` (a ToDo's `tool` name, else its
    executor) and `arguments` (the tool's arguments, else the ToDo's `inputs`), where
    `{"$step": "t1"}` becomes `{"$step": 1}`. The plan it turns into has the ids t1, t2, ...
    in order."""
    todos = list(plan.get("todos") or [])
    number = {todo["id"]: n for n, todo in enumerate(todos, 1)}

    def numbered(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$step"}:
                return {"$step": number.get(value["$step"], len(todos) + 1)}
            return {k: numbered(v) for k, v in value.items()}
        if isinstance(value, list):
            return [numbered(v) for v in value]
        return value

    written = []
    for todo in todos:
        step = {
            k: v
            for k, v in todo.items()
            if k not in ("id", "depends_on", "executor", "inputs", "tool")
        }
        step.setdefault("description", "")
        tool = todo.get("tool")
        step["tool"] = tool["name"] if tool else todo["executor"]
        step["arguments"] = numbered(
            tool.get("arguments", {}) if tool else todo.get("inputs") or {}
        )
        # An id that is no ToDo's becomes a number past the end: a dependency nobody has.
        step["after"] = [number.get(d, len(todos) + 1) for d in todo.get("depends_on") or []]
        written.append(step)
    return {"goal": plan.get("goal", ""), "steps": written}


Between = Callable[[str], Awaitable[None]]


def streamed_structured(
    answer: Callable[[Any], dict[str, Any]], chars: int, between: Between | None
) -> Runnable[Any, Any]:
    """Structured output that streams its answer's text (see the module docstring); its
    chunks add up (`AddableDict`) to the whole answer, so it can be invoked too."""

    def chunks(result: dict[str, Any]) -> Iterator[tuple[str, AddableDict]]:
        raw = result["raw"]
        text = raw.text
        for start in range(0, len(text), chars):
            yield text[:start], AddableDict(raw=AIMessageChunk(content=text[start : start + chars]))
        end = AIMessageChunk(content="", response_metadata=raw.response_metadata)
        yield text, AddableDict(raw=end)
        yield text, AddableDict(parsed=result["parsed"], parsing_error=result["parsing_error"])

    def whole(inputs: Iterator[Any]) -> Iterator[Any]:
        for input in inputs:
            for _, chunk in chunks(answer(input)):
                yield chunk

    async def pieces(inputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for input in inputs:
            for written, chunk in chunks(answer(input)):
                if between is not None and "raw" in chunk:
                    await between(written)
                yield chunk

    return RunnableGenerator(whole, pieces)


class ScriptedChatModel(GenericFakeChatModel):
    """Answers text calls from `texts` and structured calls from `structured`, in order.

    A text is a string, or an AIMessage (e.g. `cut_off(...)`: its `finish_reason` comes
    with the last piece when streamed, as a provider sends it). Every call is recorded in
    `calls` as (kind, schema name or None, messages), so tests can assert what the model
    was asked; `schemas` holds the schema of each structured call (what a
    grammar-constrained server would hold the answer to).
    """

    _structured: list[Any] = PrivateAttr(default_factory=list)
    _calls: list[tuple[str, str | None, list[BaseMessage]]] = PrivateAttr(default_factory=list)
    _schemas: list[Any] = PrivateAttr(default_factory=list)
    _usage: Any = PrivateAttr(default=None)
    _finish: dict[str, Any] = PrivateAttr(default_factory=dict)
    _stream_chars: int = PrivateAttr(default=0)
    _between: Between | None = PrivateAttr(default=None)

    @classmethod
    def script(
        cls,
        *,
        structured: Iterable[Any] = (),
        texts: Iterable[str | AIMessage] = (),
        stream_chars: int = 0,
        between: Between | None = None,
    ) -> ScriptedChatModel:
        model = cls(messages=iter([t if isinstance(t, AIMessage) else AIMessage(t) for t in texts]))
        model._structured = list(structured)
        model._stream_chars = stream_chars
        model._between = between
        return model

    @property
    def calls(self) -> list[tuple[str, str | None, list[BaseMessage]]]:
        return self._calls

    @property
    def schemas(self) -> list[Any]:
        return self._schemas

    @property
    def remaining(self) -> int:
        return len(self._structured)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self._calls.append(("text", None, list(messages)))
        result = super()._generate(messages, *args, **kwargs)
        self._usage = getattr(result.generations[0].message, "usage_metadata", None)
        finish = result.generations[0].message.response_metadata.get("finish_reason")
        self._finish = {"finish_reason": finish} if finish else {}
        return result

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Word by word like the base class; then, as a provider that reports usage and why
        it stopped while streaming does, a last empty chunk with a scripted message's token
        usage and finish reason."""
        yield from super()._stream(messages, *args, **kwargs)
        if self._usage or self._finish:
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="", usage_metadata=self._usage, response_metadata=self._finish
                )
            )

    def with_structured_output(
        self, schema: Any, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[Any, Any]:
        name = schema_name(schema)

        def answer(messages: Any) -> Any:
            msgs = list(messages) if isinstance(messages, list) else [messages]
            self._calls.append(("structured", name, msgs))
            self._schemas.append(schema)
            if not self._structured:
                raise AssertionError(f"no scripted structured answer left for {name}")
            return structured_reply(schema, self._structured.pop(0), include_raw)

        if self._stream_chars and include_raw:
            return streamed_structured(answer, self._stream_chars, self._between)
        return RunnableLambda(answer)


class ConstantChatModel(BaseChatModel):
    """Answers structured-output calls by schema name (`PlanDraft`, `IntentChoice`, ...);
    a text call is an error: these set-ups have no text model."""

    answers: dict[str, Any] = {}
    stream_chars: int = 0
    between: Any = None  # a `Between`

    @property
    def _llm_type(self) -> str:
        return "constant"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise RuntimeError("this test set-up has no text model")

    def with_structured_output(
        self, schema: Any, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[Any, Any]:
        name = schema_name(schema) or ""

        def answer(_: Any) -> Any:
            # A schema with no scripted answer fails like a model that answered nothing useful.
            if name not in self.answers:
                raise ValueError(f"no scripted answer for {name}")
            return structured_reply(schema, self.answers[name], include_raw)

        if self.stream_chars and include_raw:
            return streamed_structured(answer, self.stream_chars, self.between)
        return RunnableLambda(answer)


class UncallableChatModel(BaseChatModel):
    """Fails the test if any node calls it (rule matches and templates need no LLM)."""

    @property
    def _llm_type(self) -> str:
        return "uncallable"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise AssertionError(f"the LLM was called: {messages}")

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
        raise AssertionError(f"the LLM was asked for structured output: {schema}")
