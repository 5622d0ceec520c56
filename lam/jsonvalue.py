"""Checks that a Python value is plain JSON, so that messages always serialise and round-trip.

Content, ToDo inputs and outputs are "any JSON". Built in Python they could hold a set, a
datetime, a NaN or a tuple, which either fail in ``to_json`` or come back different; this
module refuses those up front, with the path of the offending value.
"""

from __future__ import annotations

import math
from typing import Any

from lam.errors import FieldError, NestedFieldErrors, field_path

__all__ = ["MAX_JSON_DEPTH", "check_json", "json_errors"]

MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays/objects accepted: protects the recursive parts of the stack."""

_MAX_REPORTED = 20


def json_errors(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> list[FieldError]:
    """Every place in ``value`` that is not plain JSON (iterative, so deep input is safe)."""
    errors: list[FieldError] = []
    # (value, path, depth); a stack keeps this O(size) without recursion.
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 0)]
    while stack and len(errors) < _MAX_REPORTED:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, (str, bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                errors.append(_err(path, f"{item!r} is not a JSON number"))
            continue
        if isinstance(item, dict):
            if depth >= max_depth:
                errors.append(_err(path, f"nested more than {max_depth} levels deep"))
                continue
            for key, sub in reversed(list(item.items())):
                if not isinstance(key, str):
                    errors.append(_err(path, f"object key {key!r} is not a string"))
                    continue
                stack.append((sub, (*path, key), depth + 1))
            continue
        if isinstance(item, list):
            if depth >= max_depth:
                errors.append(_err(path, f"nested more than {max_depth} levels deep"))
                continue
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], (*path, index), depth + 1))
            continue
        errors.append(_err(path, f"a {type(item).__name__} is not a JSON value"))
    return errors


def check_json(value: Any) -> Any:
    """Pydantic validator body: return ``value`` unchanged or raise with every bad path."""
    errors = json_errors(value)
    if errors:
        raise NestedFieldErrors(errors)
    return value


def _err(path: tuple[str | int, ...], message: str) -> FieldError:
    return {"field": field_path(path), "message": message}
