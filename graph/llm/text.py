"""Text out of what models and libraries hand back: a message's text, a streamed piece's,
why an answer stopped, pydantic's problems in one line, a library's message without its
help-page pointers, a server's own words for an error status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


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


def piece_text(chunk: Any) -> str:
    """A streamed piece's share of the answer's JSON text: its text, or its first tool
    call's arguments (adding the pieces up as messages would cost more with each one)."""
    if chunk is None:
        return ""
    text = message_text(chunk)
    if text:
        return text
    calls = getattr(chunk, "tool_call_chunks", None) or []
    return "".join(str(c.get("args") or "") for c in calls if c.get("index") in (0, None))


def finish_reason(message: Any) -> str | None:
    """Why the model stopped (`length`: at the token limit), as OpenAI or Ollama say it."""
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


def cut(text: str, limit: int) -> str:
    """`plain(text)`, at most `limit` characters (the last an ellipsis when cut)."""
    text = plain(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def server_message(exc: BaseException) -> str:
    """The server's own words for an error status, without the client's dump around them."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return cut(str(inner["message"]), 200)
        if isinstance(inner, str):
            return cut(inner, 200)
    message = getattr(exc, "error", None) or getattr(exc, "message", None) or str(exc)
    return cut(str(message), 200)
