"""The one exception type of the LAM protocol, and the plumbing that builds it.

Every bad input is refused with :class:`LAMValidationError`, whatever went wrong (bad JSON,
wrong types, content that does not fit the performative, oversize...). Callers catch one
type and get a list of ``{"field": "content.todo.id", "message": "..."}`` they can show to
a person, log, or send back to the peer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = ["FieldError", "LAMValidationError", "field_path"]

FieldError = dict[str, str]
"""One problem: ``{"field": dotted path ("" for the message as a whole), "message": text}``."""

_MAX_ERRORS_IN_STR = 20


def field_path(loc: Iterable[str | int]) -> str:
    """Dotted path of a location: ``("content", "todos", 0, "id")`` -> ``content.todos.0.id``."""
    return ".".join(str(part) for part in loc)


class LAMValidationError(ValueError):
    """A LAM message (or a part of one) is not valid.

    ``errors`` lists every problem found, each ``{"field": ..., "message": ...}``; ``str()``
    names the field paths so a log line alone says what to fix.
    """

    errors: list[FieldError]

    def __init__(self, errors: Sequence[FieldError], *, title: str = "invalid LAM message") -> None:
        self.errors = [dict(e) for e in errors] or [{"field": "", "message": "invalid"}]
        self.title = title
        super().__init__(self._render())

    @classmethod
    def single(cls, field: str, message: str) -> LAMValidationError:
        return cls([{"field": field, "message": message}])

    @property
    def fields(self) -> list[str]:
        """The field paths that have a problem, in order, without repeats."""
        return list(dict.fromkeys(e["field"] for e in self.errors))

    def _render(self) -> str:
        shown = self.errors[:_MAX_ERRORS_IN_STR]
        parts = [f"{e['field'] or '<message>'}: {e['message']}" for e in shown]
        more = len(self.errors) - len(shown)
        if more:
            parts.append(f"... and {more} more")
        noun = "error" if len(self.errors) == 1 else "errors"
        return f"{self.title} ({len(self.errors)} {noun}): " + "; ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep `errors` across pickling (multiprocessing, checkpoint serialisers).
        return (_rebuild, (self.errors, self.title))


def _rebuild(errors: list[FieldError], title: str) -> LAMValidationError:
    return LAMValidationError(errors, title=title)


class NestedFieldErrors(ValueError):
    """Raised inside a pydantic validator to report several errors at paths below it.

    pydantic turns any ValueError raised by a validator into one ``value_error`` at the
    validator's location; :func:`errors_from_pydantic` finds this exception in the error's
    context and expands it back into one error per path.
    """

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{e['field'] or '<value>'}: {e['message']}" for e in errors))


def join_path(prefix: str, field: str) -> str:
    if not prefix:
        return field
    if not field:
        return prefix
    return f"{prefix}.{field}"


def errors_from_pydantic(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Flatten a pydantic ValidationError into field errors with dotted paths."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        path = join_path(prefix, field_path(err["loc"]))
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, (NestedFieldErrors, LAMValidationError)):
            # LAMValidationError: our __init__ ran inside model_validate and pydantic wrapped it.
            out.extend(
                {"field": join_path(path, e["field"]), "message": e["message"]}
                for e in cause.errors
            )
        elif isinstance(cause, ValueError) and err["type"] == "value_error":
            # Our own validators' messages are written for people: drop pydantic's prefix.
            out.append({"field": path, "message": str(cause)})
        else:
            out.append({"field": path, "message": str(err["msg"])})
    return out
