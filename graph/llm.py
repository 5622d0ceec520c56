"""Chat models from configuration: OpenAI, Ollama, or any OpenAI-compatible server.

Nothing here reaches the network until a model is called. With no provider configured,
asking for a model raises `LLMNotConfiguredError`, whose message names the settings to set,
so rule-matched requests with template plans run without any LLM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ValidationError

from graph.config import LLM_SETTINGS_HINT, Role, Settings

SchemaT = TypeVar("SchemaT", bound=BaseModel)


class LLMError(RuntimeError):
    """A step that needs the LLM could not get an answer; `code` goes into the `failure`."""

    code = "llm_error"


class LLMNotConfiguredError(LLMError):
    """A step needs an LLM and none is configured."""

    code = "llm_not_configured"

    def __init__(self, role: Role, what: str = "") -> None:
        self.role = role
        need = f" to {what}" if what else ""
        super().__init__(f"No LLM is configured for the {role}{need}: {LLM_SETTINGS_HINT}.")


class LLMOutputError(LLMError):
    """The model answered, but not in the shape we asked for."""

    code = "llm_bad_output"


class LLMCallError(LLMError):
    """The model's server failed or could not be reached (after the client's retries)."""

    code = "llm_unreachable"


def build_chat_model(settings: Settings, role: Role) -> BaseChatModel:
    """Construct the chat model for one role from settings (no network call)."""
    provider = settings.provider
    model = settings.model_for(role)
    if provider is None or not model:
        raise LLMNotConfiguredError(role)
    common: dict[str, Any] = {"model": model, "temperature": settings.llm_temperature}
    if provider == "ollama":
        from langchain_ollama import ChatOllama

        extra: dict[str, Any] = {}
        if settings.llm_max_tokens:
            extra["num_predict"] = settings.llm_max_tokens
        return ChatOllama(
            base_url=settings.ollama_host,
            client_kwargs={"timeout": settings.llm_timeout_s},
            **common,
            **extra,
        )

    from langchain_openai import ChatOpenAI

    kwargs: dict[str, Any] = {
        **common,
        "timeout": settings.llm_timeout_s,
        "max_retries": settings.llm_max_retries,
        # A compatible server usually takes any key; the client insists on having one.
        "api_key": settings.llm_api_key or "not-needed",
    }
    if provider == "openai_compatible":
        if not settings.llm_base_url:
            raise LLMNotConfiguredError(role)
        kwargs["base_url"] = settings.llm_base_url
    elif settings.llm_base_url:
        kwargs["base_url"] = settings.llm_base_url
    if settings.llm_max_tokens:
        if settings.max_tokens_param == "max_tokens":
            # llama.cpp ignores max_completion_tokens, which langchain-openai sends.
            kwargs["extra_body"] = {"max_tokens": settings.llm_max_tokens}
        else:
            kwargs["max_completion_tokens"] = settings.llm_max_tokens
    return ChatOpenAI(**kwargs)


def _call_config(role: Role) -> RunnableConfig:
    """Each call named by its role (LangSmith, traces); `cpa_role` is what metrics count by."""
    return {"run_name": f"{role} model", "metadata": {"cpa_role": role}}


class ChatModels:
    """The chat model for each role, built lazily; tests pass scripted models instead."""

    def __init__(
        self, settings: Settings, overrides: Mapping[str, BaseChatModel] | None = None
    ) -> None:
        self.settings = settings
        self._overrides: dict[str, BaseChatModel] = dict(overrides or {})
        self._models: dict[str, BaseChatModel] = dict(self._overrides)

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
            model = build_chat_model(self.settings, role)
        except LLMNotConfiguredError:
            raise LLMNotConfiguredError(role, what) from None
        self._models[role] = model
        return model

    def _call_error(self, role: Role, exc: Exception) -> LLMError:
        if isinstance(exc, LLMError):
            return exc
        provider = self.settings.provider or "scripted"
        where = self.settings.llm_base_url or self.settings.ollama_host or provider
        return LLMCallError(f"the {role} model ({where}) failed: {type(exc).__name__}: {exc}")

    async def structured(
        self, role: Role, schema: type[SchemaT], messages: list[Any], what: str = ""
    ) -> SchemaT:
        """Ask the role's model for an instance of `schema`."""
        model = self.get(role, what)
        runnable = model.with_structured_output(
            schema, method=self.settings.structured_output_method
        )
        try:
            result = await runnable.ainvoke(messages, _call_config(role))
        except (OutputParserException, ValidationError) as exc:
            raise LLMOutputError(
                f"the {role} model returned no valid {schema.__name__}: {exc}"
            ) from exc
        except Exception as exc:
            raise self._call_error(role, exc) from exc
        if isinstance(result, schema):
            return result
        try:
            return schema.model_validate(result)
        except Exception as exc:
            raise LLMOutputError(
                f"the {role} model returned no valid {schema.__name__}: {exc}"
            ) from exc

    async def text(self, role: Role, messages: list[Any], what: str = "") -> str:
        """Ask the role's model for plain text."""
        model = self.get(role, what)
        try:
            reply = await model.ainvoke(messages, _call_config(role))
        except Exception as exc:
            raise self._call_error(role, exc) from exc
        content = reply.content
        if isinstance(content, str):
            return content
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
