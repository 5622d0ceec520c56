"""What can go wrong with a model call: one `LLMError`, its `code` saying what happened.

    llm_not_configured  no model for the role
    llm_unreachable     no connection to the server (after `llm_max_retries` retries)
    llm_timeout         no answer within the role's timeout (not retried)
    llm_server_error    the server answered with an error status (5xx and 429 retried)
    llm_truncated       the answer stopped at the role's token limit
    llm_bad_output      the answer does not fit the schema asked for

`is_timeout` and `is_connection_error` recognise the clients' own exceptions (openai's,
httpx's, the builtins Ollama's client raises); `graph.llm.chat_models.ChatModels.as_llm_error`
maps them to these classes with a message that names the role, the model and the setting.
"""

from __future__ import annotations

from typing import Any

from graph.config import LLM_SETTINGS_HINT, Role


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


def is_timeout(exc: BaseException) -> bool:
    import httpx
    import openai

    # langchain-openai's OpenAITimeoutError is an openai.APITimeoutError; Ollama's is httpx's.
    return isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError)


def is_connection_error(exc: BaseException) -> bool:
    import httpx
    import openai

    # Ollama's client turns httpx.ConnectError into the builtin ConnectionError.
    return isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError)
