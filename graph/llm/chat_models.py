"""`ChatModels`: the chat model for each role, and the calls the graph makes to them.

Every call is bounded per role (a token limit and a timeout, `graph.config.ROLE_DEFAULTS`),
retried after no connection or a server error (`llm_max_retries`, with back-off; never after
a timeout), and every way it can go wrong ends in one `LLMError` (`graph.llm.errors`) whose
message names the role, the model and the setting to look at, without a library's dump.

Structured output is asked for with the schema as JSON Schema and checked here with
pydantic, so the model's raw answer is at hand for the error (and a repair prompt), however
the server failed to fit the schema. `structured_stream` is the same call read as the model
writes it: the answer's JSON text so far goes to a callback after each piece (the planner's
streamed plans, `nodes.early_start`), the whole answer is checked the same way.

Inside a graph run, each call also writes to LangGraph's custom stream: `{"llm": {...}}`
when a step starts and stops waiting on a model, and `{"token": {...}}` for each piece of a
streamed answer, so a view can show which step waits and the answer as it is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from pydantic import BaseModel, ValidationError

from graph.config import Role, Settings
from graph.llm.errors import (
    LLMError,
    LLMNotConfiguredError,
    LLMOutputError,
    LLMServerError,
    LLMTimeoutError,
    LLMTruncatedError,
    LLMUnreachableError,
    is_connection_error,
    is_timeout,
)
from graph.llm.providers import build_chat_model
from graph.llm.text import (
    cut,
    finish_reason,
    message_text,
    piece_text,
    schema_problems,
    server_message,
)

SchemaT = TypeVar("SchemaT", bound=BaseModel)
T = TypeVar("T")
logger = logging.getLogger("graph.llm")

#: How much of a model's raw answer an error keeps (for a repair prompt, not for a person).
RAW_KEPT = 4000
_BACKOFF_S = 0.5


class _NoLoop:
    """The key of models built outside any event loop."""


_NO_LOOP = _NoLoop()


def _call_config(role: Role) -> RunnableConfig:
    """Each call named by its role (LangSmith, traces); `cpa_role` is what metrics count by."""
    return {"run_name": f"{role} model", "metadata": {"cpa_role": role}}


def _stream_writer() -> Callable[[Any], None] | None:
    """LangGraph's custom stream writer, inside a graph run (else None)."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except RuntimeError:  # not inside a graph run (a direct call, a test)
        return None


def _node_name() -> str | None:
    try:
        from langgraph.config import get_config

        return str(get_config().get("metadata", {}).get("langgraph_node") or "") or None
    except RuntimeError:
        return None


class ChatModels:
    """The chat model for each role, built lazily; tests pass scripted models instead.

    Built models are kept per event loop: their HTTP clients' connections belong to the
    loop that opened them, and a process may run the graph on several loops in turn
    (`asyncio.run` twice, a test suite).
    """

    def __init__(
        self, settings: Settings, overrides: Mapping[str, BaseChatModel] | None = None
    ) -> None:
        self.settings = settings
        self._overrides: dict[str, BaseChatModel] = dict(overrides or {})
        self._models: dict[str, BaseChatModel] = dict(self._overrides)
        self._built: weakref.WeakKeyDictionary[Any, dict[str, BaseChatModel]] = (
            weakref.WeakKeyDictionary()
        )

    def with_settings(self, settings: Settings) -> ChatModels:
        """The same scripted overrides under other settings (models are rebuilt lazily)."""
        return ChatModels(settings, self._overrides)

    def available(self, role: Role) -> bool:
        if role in self._models or "*" in self._models:
            return True
        return self.settings.provider is not None and bool(self.settings.model_for(role))

    def get(self, role: Role, what: str = "") -> BaseChatModel:
        if role in self._models:
            return self._models[role]
        if "*" in self._models:
            return self._models["*"]
        try:
            loop: Any = asyncio.get_running_loop()
        except RuntimeError:
            loop = _NO_LOOP
        built = self._built.setdefault(loop, {})
        if role not in built:
            try:
                built[role] = build_chat_model(self.settings, role)
            except LLMNotConfiguredError:
                raise LLMNotConfiguredError(role, what) from None
        return built[role]

    # Naming what went wrong ----------------------------------------------------------------

    def model_name(self, role: Role) -> str:
        model = self._models.get(role) or self._models.get("*")
        if model is not None:  # scripted
            name = getattr(model, "model_name", None) or getattr(model, "model", None)
            return str(name or type(model).__name__)
        return self.settings.model_for(role) or "?"

    def _who(self, role: Role) -> str:
        """ "the planner model (smollm2 at http://…)": whose answer, from where."""
        where = self.settings.llm_base_url or self.settings.ollama_host
        if where is None and self.settings.provider is not None:
            where = self.settings.provider
        at = f" at {where}" if where and not self._overrides else ""
        return f"the {role} model ({self.model_name(role)}{at})"

    def _env(self, role: Role, suffix: str) -> str:
        return f"CPA_{role.upper()}_{suffix}"

    def as_llm_error(self, role: Role, exc: BaseException) -> LLMError:
        """The `LLMError` an exception from a model call maps to (what it means, in words)."""
        if isinstance(exc, LLMError):
            return exc
        who, model = self._who(role), self.model_name(role)
        kw: dict[str, Any] = {"role": role, "model": model}
        name = type(exc).__name__
        if name == "LengthFinishReasonError":  # openai's parse(): cut off before complete
            completion = getattr(exc, "completion", None)
            choices = getattr(completion, "choices", None) or []
            raw = message_text(choices[0].message) if choices else None
            return self._truncated(role, raw)
        if isinstance(exc, ValidationError):  # a client checked the answer itself
            return LLMOutputError(
                f"{who} gave an answer that does not fit: {schema_problems(exc)}",
                detail=schema_problems(exc),
                **kw,
            )
        if is_timeout(exc):
            seconds = self.settings.timeout_for(role)
            return LLMTimeoutError(
                f"{who} did not answer within {seconds:g} s ({self._env(role, 'TIMEOUT_S')})",
                **kw,
            )
        if is_connection_error(exc):
            return LLMUnreachableError(f"{who} could not be reached: {cut(str(exc), 120)}", **kw)
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            return LLMServerError(
                f"{who} answered HTTP {status}: {server_message(exc)}", status=status, **kw
            )
        return LLMError(f"{who} failed: {name}: {cut(str(exc), 200)}", **kw)

    def _truncated(self, role: Role, raw: str | None) -> LLMTruncatedError:
        limit = self.settings.max_tokens_for(role)
        return LLMTruncatedError(
            f"{self._who(role)} stopped at its token limit ({limit} tokens, "
            f"{self._env(role, 'MAX_TOKENS')}) before its answer was complete",
            role=role,
            model=self.model_name(role),
            raw=raw[:RAW_KEPT] if raw else raw,
            detail="cut off at the token limit",
        )

    def _bad_output(
        self, role: Role, schema: type[BaseModel], why: str, raw: str
    ) -> LLMOutputError:
        method = self.settings.structured_output_method
        others = " or ".join(
            m for m in ("json_schema", "function_calling", "json_mode") if m != method
        )
        return LLMOutputError(
            f"{self._who(role)} gave no valid {schema.__name__} (structured output by "
            f"{method}): {why}. If the server does not honour {method}, try "
            f"CPA_LLM_STRUCTURED_OUTPUT={others}",
            role=role,
            model=self.model_name(role),
            raw=raw[:RAW_KEPT],
            detail=why,
        )

    # Calling -------------------------------------------------------------------------------

    async def _call(self, role: Role, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One model call: retried after no connection or a server error, named on failure."""
        writer = _stream_writer()
        node = _node_name()
        event = {"node": node, "role": role, "model": self.model_name(role), "what": what}
        if writer is not None:
            writer({"llm": {**event, "phase": "start"}})
        try:
            attempts = self.settings.llm_max_retries + 1
            for attempt in range(1, attempts + 1):
                try:
                    return await call()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = self.as_llm_error(role, exc)
                    again = isinstance(error, LLMUnreachableError) or (
                        isinstance(error, LLMServerError) and error.retryable
                    )
                    if not again or attempt == attempts:
                        if attempt > 1:
                            error.args = (f"{error} (after {attempt} attempts)",)
                        raise error from exc
                    logger.info("%s; trying again (%d of %d)", error, attempt + 1, attempts)
                    await asyncio.sleep(_BACKOFF_S * 2 ** (attempt - 1))
            raise AssertionError("unreachable")
        finally:
            if writer is not None:
                writer({"llm": {**event, "phase": "end"}})

    async def structured(
        self,
        role: Role,
        schema: type[SchemaT],
        messages: list[Any],
        what: str = "",
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> SchemaT:
        """Ask the role's model for an instance of `schema` (checked here, not by the client).

        `json_schema`: what the model is held to, when it is narrower than `schema`'s own
        (the plan's: one variant per catalogue entry); the answer is read with `schema`.
        """
        runnable = self._structured_runnable(role, schema, what, json_schema)
        config = _call_config(role)
        return cast(
            SchemaT, await self._call(role, what, lambda: runnable.ainvoke(messages, config))
        )

    async def structured_stream(
        self,
        role: Role,
        schema: type[SchemaT],
        messages: list[Any],
        on_text: Callable[[str], None],
        what: str = "",
        *,
        json_schema: dict[str, Any] | None = None,
    ) -> SchemaT:
        """`structured`, read as the model writes it: `on_text` gets the answer's JSON text
        so far after each piece (the forced tool call's arguments with `function_calling`).

        The whole answer is checked as `structured` checks it, with the same errors. A
        model that does not stream gives its answer as one piece. After a retry the text
        starts again from nothing.
        """
        runnable = self._structured_runnable(role, schema, what, json_schema)
        config = _call_config(role)

        async def ask() -> SchemaT:
            # The structured runnable hands its raw message on only once it is whole (its
            # parser's fallback gathers its input first), so the pieces are read from the
            # model's own stream events; from a model that streams no events of its own
            # (a scripted one), from what the structured runnable yields.
            written = ""
            from_model = False  # the pieces come from the model's own events
            root: Any = None  # the call's own run (inside a graph it has parents)
            answer: Any = None
            async for event in runnable.astream_events(messages, config, version="v2"):
                kind, data = event["event"], event["data"]
                root = event["run_id"] if root is None else root
                piece = ""
                if kind == "on_chat_model_stream":
                    from_model = True
                    piece = piece_text(data.get("chunk"))
                elif kind == "on_chain_stream" and event["run_id"] == root:
                    answer = data.get("chunk")
                elif kind == "on_chain_stream" and not from_model:
                    chunk = data.get("chunk")
                    parents = event.get("parent_ids") or []
                    if parents and parents[-1] == root and isinstance(chunk, Mapping):
                        piece = piece_text(chunk.get("raw"))
                if piece:
                    written += piece
                    on_text(written)
            return cast(SchemaT, answer)

        return await self._call(role, what, ask)

    def _structured_runnable(
        self,
        role: Role,
        schema: type[SchemaT],
        what: str,
        json_schema: dict[str, Any] | None,
    ) -> Runnable[Any, SchemaT]:
        """The role's model asked for `json_schema` (or `schema`'s own), its answer checked
        with `schema` inside the call's run, so that callbacks (metrics, traces) see an
        answer that does not fit as the call's error."""
        model = self.get(role, what)
        return model.with_structured_output(
            json_schema or schema.model_json_schema(),
            method=self.settings.structured_output_method,
            include_raw=True,
        ) | RunnableLambda(lambda result: self._parse(role, schema, result))

    def _parse(self, role: Role, schema: type[SchemaT], result: Any) -> SchemaT:
        if not isinstance(result, Mapping):  # a model that parsed for itself
            raw_text = json.dumps(result, default=str) if not isinstance(result, str) else result
            return self._validated(role, schema, result, raw_text)
        raw = result.get("raw")
        text = message_text(raw)
        tool_calls = getattr(raw, "tool_calls", None) or []
        if tool_calls and not text:
            text = json.dumps(tool_calls[0].get("args"), ensure_ascii=False, default=str)
        method = self.settings.structured_output_method
        if method == "function_calling" and not tool_calls:
            # Prose instead of the forced tool call (cut off or not): the server ignored it.
            raise self._bad_output(role, schema, "it made no tool call", text)
        if finish_reason(raw) == "length":
            raise self._truncated(role, text)
        if result.get("parsing_error") is not None:
            why = "its answer is not a JSON object" if text.strip() else "its answer is empty"
            raise self._bad_output(role, schema, why, text)
        parsed = result.get("parsed")
        if parsed is None:
            raise self._bad_output(role, schema, "it gave no answer", text)
        return self._validated(role, schema, parsed, text)

    def _validated(self, role: Role, schema: type[SchemaT], parsed: Any, raw: str) -> SchemaT:
        if isinstance(parsed, schema):
            return parsed
        try:
            return schema.model_validate(parsed)
        except ValidationError as exc:
            raise self._bad_output(role, schema, schema_problems(exc), raw) from None

    async def text(
        self,
        role: Role,
        messages: list[Any],
        what: str = "",
        *,
        stream: bool = False,
        whole: bool = False,
    ) -> str:
        """Ask the role's model for plain text.

        `stream`: the answer's pieces go to the graph's custom stream as they come
        (`{"token": {"node", "text"}}`). An answer cut off at the token limit raises
        LLMTruncatedError with `whole`; without it, it is kept, marked with "…".
        """
        model = self.get(role, what)
        writer = _stream_writer() if stream else None
        node = _node_name()

        async def ask() -> tuple[str, str | None]:
            if writer is None:
                reply = await model.ainvoke(messages, _call_config(role))
                return message_text(reply), finish_reason(reply)
            pieces: list[str] = []
            finish: str | None = None
            async for chunk in model.astream(messages, _call_config(role)):
                piece = message_text(chunk)
                finish = finish_reason(chunk) or finish
                if piece:
                    pieces.append(piece)
                    writer({"token": {"node": node, "role": role, "text": piece}})
            return "".join(pieces), finish

        text, finish = await self._call(role, what, ask)
        if finish == "length":
            if whole:
                raise self._truncated(role, text)
            logger.warning("%s", self._truncated(role, None))
            text = text.rstrip() + "…"
        return text
