"""Log lines that tie together: each carries its conversation's id and tenant.

`conversation_logging(conversation_id, tenant)` marks what runs inside it (a contextvar,
so asyncio tasks started inside inherit it); lines logged by graph nodes are also matched to
their conversation through LangChain's run config, wherever the run was started. The
handler of `configure_logging()` then writes each record either as readable text (the
default) or as one JSON object a line (`CPA_LOG_FORMAT=json`):

    {"time": "...Z", "level": "info", "logger": "cpa_planner.turn", "message": "...",
     "conversation_id": "...", "tenant": "acme", "outcome": "done", "trace_id": "..."}

Fields given as `extra={FIELDS: {...}}` become keys of the object (`key=value` in text).
Every line is cleaned of the secrets this process knows (`known_secrets()`: API keys, the
LLM's key, the metrics token, LangSmith's key, the password and secret query values of the
Redis URL), wherever they appear: a message, a field, a traceback. The request's text is
only ever logged where `CPA_LOG_REQUEST_TEXT` allows it (`graph.telemetry.handler`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from langchain_core.runnables.config import var_child_runnable_config

from graph.redaction import MASK, redact_urls, secrets_in
from graph.telemetry.settings import TelemetrySettings

FIELDS = "cpa_fields"
# Secret-bearing variables whose values never reach a log line.
_SECRET_VARIABLES = (
    "CPA_LLM_API_KEY",
    "OPENAI_API_KEY",
    "CPA_METRICS_TOKEN",
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
)
_URL_VARIABLES = ("REDIS_URL", "CPA_REDIS_URL", "CPA_LLM_BASE_URL", "OPENAI_BASE_URL")
_SHORTEST_SECRET = 4  # shorter values would mask ordinary words
_CONVERSATION: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "cpa_log_conversation", default=None
)


@contextlib.contextmanager
def conversation_logging(conversation_id: str, tenant: str | None) -> Iterator[None]:
    """Lines logged inside carry this conversation's id and tenant."""
    token = _CONVERSATION.set((conversation_id, tenant))
    try:
        yield
    finally:
        # An async generator closed from another task cannot reset; its context goes anyway.
        with contextlib.suppress(ValueError):
            _CONVERSATION.reset(token)


def current_conversation() -> tuple[str, str | None] | None:
    """(conversation id, tenant) of what is running now, if it belongs to one."""
    found = _CONVERSATION.get()
    if found is not None:
        return found
    config = var_child_runnable_config.get()
    if not config:
        return None
    metadata = config.get("metadata") or {}
    cid = metadata.get("conversation_id")
    if cid is None:
        return None
    tenant = metadata.get("tenant")
    return str(cid), str(tenant) if tenant is not None else None


class ConversationFilter(logging.Filter):
    """Adds `conversation_id` and `tenant` to each record (None outside conversations)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation_id"):
            found = current_conversation()
            record.conversation_id, record.tenant = found if found else (None, None)
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS, None)
    return dict(fields) if isinstance(fields, dict) else {}


def known_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets of this process's configuration, longest first."""
    env = os.environ if environ is None else environ
    found = {env.get(name, "").strip() for name in _SECRET_VARIABLES}
    for name in _URL_VARIABLES:
        found.update(secrets_in(env.get(name, "").strip() or None))
    for entry in env.get("CPA_A2A_AGENTS", "").split(","):
        found.update(secrets_in(entry.partition("=")[2].strip() or None))
    for entry in env.get("CPA_API_KEYS", "").split(","):
        found.add(_key_of(entry))
    keys_file = env.get("CPA_API_KEYS_FILE", "").strip()
    if keys_file:
        with contextlib.suppress(OSError):
            for line in Path(keys_file).expanduser().read_text(encoding="utf-8").splitlines():
                found.add(_key_of(line))
    return sorted((s for s in found if len(s) >= _SHORTEST_SECRET), key=len, reverse=True)


def _key_of(entry: str) -> str:
    """The key of a key entry: `tenant:key`, or `...;key=K` (`api.settings.parse_keys`)."""
    for part in entry.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "key":
            return value.strip()
    return entry.partition(":")[2].strip()


class _Masking(logging.Formatter):
    def __init__(self, fmt: str | None = None, secrets: list[str] | None = None) -> None:
        super().__init__(fmt)
        self.secrets = known_secrets() if secrets is None else secrets

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        # URLs nobody configured (a plan's HTTP step, an A2A agent's endpoints), as httpx's
        # INFO lines and exceptions quote them: their credentials too.
        return redact_urls(text)


class JsonFormatter(_Masking):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = getattr(record, "conversation_id", None)
        if cid is not None:
            entry["conversation_id"] = cid
            entry["tenant"] = getattr(record, "tenant", None)
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.mask(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(_Masking):
    """`LEVEL logger: message [conversation=... tenant=... key=value ...]`."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s", secrets)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = []
        cid = getattr(record, "conversation_id", None)
        if cid is not None:
            tags.append(f"conversation={cid}")
            tags.append(f"tenant={getattr(record, 'tenant', None)}")
        tags += [f"{k}={v}" for k, v in _fields(record).items()]
        if not tags:
            return self.mask(line)
        first, newline, rest = line.partition("\n")  # a traceback stays below the line
        return self.mask(f"{first} [{' '.join(tags)}]{newline}{rest}")


def configure_logging(
    settings: TelemetrySettings, *, level: str | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """One handler on the root logger, in the chosen format; uvicorn's loggers go through it.

    Replaces the root's handlers (as `logging.basicConfig(force=True)` does). Returns it.
    """
    handler = log_handler(settings.log_format, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel((level or settings.log_level).upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    return handler


def log_handler(log_format: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """The handler of `configure_logging`: text or JSON lines, conversation ids, no secrets."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ConversationFilter())
    return handler


def logging_config(settings: TelemetrySettings, *, level: str | None = None) -> dict[str, Any]:
    """`configure_logging` as a `logging.config.dictConfig` dictionary, for uvicorn.

    uvicorn's worker processes (`serve --workers N`) are fresh interpreters that import the
    app without `serve()`; they configure their logging from uvicorn's `log_config` when they
    start. Without it they kept Python's defaults, and their lines below warnings were lost.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "default": {"()": f"{__name__}.log_handler", "log_format": settings.log_format}
        },
        "root": {"handlers": ["default"], "level": (level or settings.log_level).upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
