"""The chat models of the tests: no LLM anywhere, every answer written in the test.

ScriptedChatModel    answers in order from a script (langchain-core's fake chat model,
                     plus scripted structured output); records every call
ConstantChatModel    answers each structured call by its schema's name, as often as
                     asked (servers and subprocesses that run many conversations)
UncallableChatModel  fails the test if anything calls it (rules and templates need none)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, PrivateAttr


class ScriptedChatModel(GenericFakeChatModel):
    """Answers text calls from `texts` and structured calls from `structured`, in order.

    Every call is recorded in `calls` as (kind, schema name or None, messages), so tests
    can assert what the model was asked.
    """

    _structured: list[Any] = PrivateAttr(default_factory=list)
    _calls: list[tuple[str, str | None, list[BaseMessage]]] = PrivateAttr(default_factory=list)

    @classmethod
    def script(
        cls, *, structured: Iterable[Any] = (), texts: Iterable[str] = ()
    ) -> ScriptedChatModel:
        model = cls(messages=iter([AIMessage(t) for t in texts]))
        model._structured = list(structured)
        return model

    @property
    def calls(self) -> list[tuple[str, str | None, list[BaseMessage]]]:
        return self._calls

    @property
    def remaining(self) -> int:
        return len(self._structured)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self._calls.append(("text", None, list(messages)))
        return super()._generate(messages, *args, **kwargs)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
        def answer(messages: Any) -> Any:
            msgs = list(messages) if isinstance(messages, list) else [messages]
            self._calls.append(("structured", getattr(schema, "__name__", None), msgs))
            if not self._structured:
                raise AssertionError(f"no scripted structured answer left for {schema}")
            item = self._structured.pop(0)
            if isinstance(item, Exception):
                raise item
            if isinstance(item, BaseModel):
                item = item.model_dump()
            return schema.model_validate(item)

        return RunnableLambda(answer)


class ConstantChatModel(BaseChatModel):
    """Answers structured-output calls by schema name (`PlanDraft`, `IntentChoice`, ...);
    a text call is an error: these set-ups have no text model."""

    answers: dict[str, Any] = {}

    @property
    def _llm_type(self) -> str:
        return "constant"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise RuntimeError("this test set-up has no text model")

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
        name = getattr(schema, "__name__", "")

        def answer(_: Any) -> Any:
            # A schema with no scripted answer fails like a model that answered nothing useful.
            if name not in self.answers:
                raise ValueError(f"no scripted answer for {name}")
            return schema.model_validate(self.answers[name])

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
