"""Chat models from configuration: OpenAI, Ollama, or any OpenAI-compatible server.

Nothing here reaches the network until a model is called. With no provider configured,
asking for a model raises `LLMNotConfiguredError`, whose message names the settings to set,
so rule-matched requests with template plans run without any LLM.

One module per concern, their public names here:

    errors        LLMError and its kinds, one `code` each (docs/llm.md)
    providers     build_chat_model: a role's chat model from settings, per provider
    chat_models   ChatModels: each role's model, the calls (structured, streamed, text),
                  retries, and the exceptions of a call named as LLMErrors
    text          text out of models and libraries (schema_problems, plain, message_text)
"""

from graph.llm.chat_models import ChatModels
from graph.llm.errors import (
    LLMCallError,
    LLMError,
    LLMNotConfiguredError,
    LLMOutputError,
    LLMServerError,
    LLMTimeoutError,
    LLMTruncatedError,
    LLMUnreachableError,
)
from graph.llm.providers import build_chat_model
from graph.llm.text import plain, schema_problems

__all__ = [
    "ChatModels",
    "LLMCallError",
    "LLMError",
    "LLMNotConfiguredError",
    "LLMOutputError",
    "LLMServerError",
    "LLMTimeoutError",
    "LLMTruncatedError",
    "LLMUnreachableError",
    "build_chat_model",
    "plain",
    "schema_problems",
]
