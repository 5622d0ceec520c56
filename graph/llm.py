"""Chat models from configuration: OpenAI, Ollama, or any OpenAI-compatible server.

Nothing here reaches the network until a model is called. With no provider configured,
asking for a model raises `LLMNotConfiguredError`, whose message names the settings to set,
so rule-matched requests with template plans run without any LLM.

Every call is bounded per role (a token limit and a timeout, `graph.config.ROLE_DEFAULTS`),
and every way it can go wrong ends in one `LLMError` whose `code` says what happened and
whose message names the role, the model and the setting to look at, without a library's
dump:

    llm_not_configured  no model for the role
    llm_unreachable     no connection to the server (after `llm_max_retries` retries)
    llm_timeout         no answer within the role's timeout (not retried)
    llm_server_error    the server answered with an error status (5xx and 429 retried)
    llm_truncated       the answer stopped at the role's token limit
    llm_bad_output      the answer does not fit the schema asked for

Structured output is asked for with the schema as JSON Schema and checked here with
pydantic, so the model's raw answer is at hand for the error (and a repair prompt), however
the server failed to fit the schema.

`structured_stream` is the same call read as the model writes it: the answer's JSON text so
far goes to a callback after each piece (the planner's streamed plans,
`nodes.early_start`), the whole answer is checked the same way.

Inside a graph run, each call also writes to LangGraph's custom stream: `{"llm": {...}}`
when a step starts and stops waiting on a model, and `{"token": {...}}` for each piece of a
streamed answer, so a view can show which step waits and the answer as it is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig, RunnableLambda
from pydantic import BaseModel, ValidationError

from graph.config import LLM_SETTINGS_HINT, Role, Settings

SchemaT = TypeVar("SchemaT", bound=BaseModel)
T = TypeVar("T")
logger = logging.getLogger(__name__)

#: How much of a model's raw answer an error keeps (for a repair prompt, not for a person).
RAW_KEPT = 4000
_BACKOFF_S = 0.5


class _NoLoop:
    """The key of models built outside any event loop."""


_NO_LOOP = _NoLoop()


class LLMError(RuntimeError):
    """A step that needs the LLM could not get a usable answer; `code` goes into the `failure`.

    `role` and `model` say whose answer; `raw` is the model's answer as text, when there
    was one, and `detail` what was wrong with it (a repair shows both to the model).
    """

    code = "llm_error"

    def __init__(
        self,
        message: str,
        *,
        role: Role | None = None,
        model: str = "",
        raw: str | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.role = role
        self.model = model
        self.raw = raw
        self.detail = detail


class LLMNotConfiguredError(LLMError):
    """A step needs an LLM and none is configured."""

    code = "llm_not_configured"

    def __init__(self, role: Role, what: str = "") -> None:
        need = f" to {what}" if what else ""
        super().__init__(
            f"No LLM is configured for the {role}{need}: {LLM_SETTINGS_HINT}.", role=role
        )


class LLMCallError(LLMError):
    """The call got no answer from the model: no connection, a timeout, a server error."""

    code = "llm_unreachable"


class LLMUnreachableError(LLMCallError):
    """No connection to the model's server."""

    code = "llm_unreachable"


class LLMTimeoutError(LLMCallError):
    """The server took longer than the role's timeout."""

    code = "llm_timeout"


class LLMServerError(LLMCallError):
    """The server answered with an error status."""

    code = "llm_server_error"

    def __init__(self, message: str, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class LLMOutputError(LLMError):
    """The model answered, but not in the shape asked for."""

    code = "llm_bad_output"


class LLMTruncatedError(LLMOutputError):
    """The answer stopped at the token limit before it was complete."""

    code = "llm_truncated"


def build_chat_model(settings: Settings, role: Role) -> BaseChatModel:
    """Construct the chat model for one role from settings (no network call)."""
    provider = settings.provider
    model = settings.model_for(role)
    if provider is None or not model:
        raise LLMNotConfiguredError(role)
    common: dict[str, Any] = {"model": model, "temperature": settings.llm_temperature}
    max_tokens = settings.max_tokens_for(role)
    timeout = settings.timeout_for(role)
    if provider == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(
            base_url=settings.ollama_host,
            client_kwargs={"timeout": timeout},
            num_predict=max_tokens,
            **common,
        )

    import openai
    from langchain_openai import ChatOpenAI

    kwargs: dict[str, Any] = {
        **common,
        "timeout": timeout,
        "max_retries": 0,  # ChatModels retries what is worth retrying (not timeouts)
        # A client of its own: langchain-openai shares one per server across the process,
        # and its pooled connections belong to the event loop that opened them.
        "http_async_client": openai.DefaultAsyncHttpxClient(),
        # A compatible server usually takes any key; the client insists on having one.
        "api_key": settings.llm_api_key or "not-needed",
    }
    if provider == "openai_compatible":
        if not settings.llm_base_url:
            raise LLMNotConfiguredError(role)
        kwargs["base_url"] = settings.llm_base_url
    elif settings.llm_base_url:
        kwargs["base_url"] = settings.llm_base_url
    if settings.max_tokens_param == "max_tokens":
        # langchain-openai sends `max_completion_tokens`; compatible servers know `max_tokens`.
        kwargs["extra_body"] = {"max_tokens": max_tokens}
    else:
        kwargs["max_completion_tokens"] = max_tokens
    return ChatOpenAI(**kwargs)


def _call_config(role: Role) -> RunnableConfig:
    """Each call named by its role (LangSmith, traces); `cpa_role` is what metrics count by."""
    return {"run_name": f"{role} model", "metadata": {"cpa_role": role}}


def message_text(message: Any) -> str:
    """A chat message's text, whatever shape its content has."""
    content = getattr(message, "content", message)
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def _finish_reason(message: Any) -> str | None:
    metadata = getattr(message, "response_metadata", None) or {}
    reason = metadata.get("finish_reason") or metadata.get("done_reason")
    return str(reason) if reason else None


def schema_problems(exc: ValidationError, limit: int = 6) -> str:
    """What pydantic found, one clause per problem, without its help URLs."""
    errors = exc.errors(include_url=False)
    items = []
    for error in errors[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "the answer"
        given = error.get("input")
        shown = ""
        if isinstance(given, str | int | float | bool) and len(repr(given)) <= 40:
            shown = f", not {given!r}"  # what the model wrote helps it (and us) see why
        items.append(f"{where}: {error['msg']}{shown}")
    more = len(errors) - limit
    return "; ".join(items) + (f" (and {more} more)" if more > 0 else "")


# Libraries' pointers to their own help pages: nothing a person asking for a plan can use.
_HELP_POINTER = re.compile(
    r"\s*\(?(For (further|more) information|For troubleshooting)[^:]*:?\s*https?://\S+\)?"
    r"|\s*https?://(errors\.pydantic\.dev|docs\.langchain\.com|python\.langchain\.com)\S*",
    re.IGNORECASE,
)


def plain(text: str) -> str:
    """A library's message as one line, without its help-page pointers."""
    return " ".join(_HELP_POINTER.sub("", text).split())


def _cut(text: str, limit: int) -> str:
    text = plain(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_message(exc: BaseException) -> str:
    """The server's own words for an error status, without the client's dump around them."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return _cut(str(inner["message"]), 200)
        if isinstance(inner, str):
            return _cut(inner, 200)
    message = getattr(exc, "error", None) or getattr(exc, "message", None) or str(exc)
    return _cut(str(message), 200)


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
        if _is_timeout(exc):
            seconds = self.settings.timeout_for(role)
            return LLMTimeoutError(
                f"{who} did not answer within {seconds:g} s ({self._env(role, 'TIMEOUT_S')})",
                **kw,
            )
        if _is_connection_error(exc):
            return LLMUnreachableError(f"{who} could not be reached: {_cut(str(exc), 120)}", **kw)
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            return LLMServerError(
                f"{who} answered HTTP {status}: {_server_message(exc)}", status=status, **kw
            )
        return LLMError(f"{who} failed: {name}: {_cut(str(exc), 200)}", **kw)

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
        model = self.get(role, what)
        # The answer is checked inside the call's run, so that callbacks (metrics, traces)
        # see an answer that does not fit as the call's error.
        runnable = model.with_structured_output(
            json_schema or schema.model_json_schema(),
            method=self.settings.structured_output_method,
            include_raw=True,
        ) | RunnableLambda(lambda result: self._parse(role, schema, result))
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
        model = self.get(role, what)
        # Checked inside the call's run, as `structured` does, so that callbacks (metrics,
        # traces) see an answer that does not fit as the call's error.
        runnable = model.with_structured_output(
            json_schema or schema.model_json_schema(),
            method=self.settings.structured_output_method,
            include_raw=True,
        ) | RunnableLambda(lambda result: self._parse(role, schema, result))
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
                    piece = _piece_text(data.get("chunk"))
                elif kind == "on_chain_stream" and event["run_id"] == root:
                    answer = data.get("chunk")
                elif kind == "on_chain_stream" and not from_model:
                    chunk = data.get("chunk")
                    parents = event.get("parent_ids") or []
                    if parents and parents[-1] == root and isinstance(chunk, Mapping):
                        piece = _piece_text(chunk.get("raw"))
                if piece:
                    written += piece
                    on_text(written)
            return cast(SchemaT, answer)

        return await self._call(role, what, ask)

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
        if _finish_reason(raw) == "length":
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
                return message_text(reply), _finish_reason(reply)
            pieces: list[str] = []
            finish: str | None = None
            async for chunk in model.astream(messages, _call_config(role)):
                piece = message_text(chunk)
                finish = _finish_reason(chunk) or finish
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


def _piece_text(chunk: Any) -> str:
    """A streamed piece's share of the answer's JSON text: its text, or its first tool
    call's arguments (adding the pieces up as messages would cost more with each one)."""
    if chunk is None:
        return ""
    text = message_text(chunk)
    if text:
        return text
    calls = getattr(chunk, "tool_call_chunks", None) or []
    return "".join(str(c.get("args") or "") for c in calls if c.get("index") in (0, None))


def _is_timeout(exc: BaseException) -> bool:
    import httpx
    import openai

    # langchain-openai's OpenAITimeoutError is an openai.APITimeoutError; Ollama's is httpx's.
    return isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError)


def _is_connection_error(exc: BaseException) -> bool:
    import httpx
    import openai

    # Ollama's client turns httpx.ConnectError into the builtin ConnectionError.
    return isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError)
