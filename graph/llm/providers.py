"""A chat model per provider, built from settings: Ollama, OpenAI, or any OpenAI-compatible
server (llama.cpp, vLLM, LM Studio...). Nothing here reaches the network.

Each role's model is bounded by its token limit and timeout (`graph.config.ROLE_DEFAULTS`);
the clients never retry on their own (`ChatModels` retries what is worth retrying, not
timeouts). No provider, or no model for the role: `LLMNotConfiguredError`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from graph.config import Role, Settings
from graph.llm.errors import LLMNotConfiguredError


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
