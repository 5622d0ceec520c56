"""What the strings of a message may hold: plain ids, and text that is valid Unicode.

Ids (a message's ``id``, ``conversation_id``, ``in_reply_to``) end up in Redis keys, URLs
and SSE ``id:`` lines, so they are kept plain: 1-128 characters of letters, digits and
``.``, ``_``, ``:``, ``-`` (generated UUIDs comply).

Every string anywhere in a message must be encodable as UTF-8: JSON lets a client write an
unpaired surrogate (``"\\ud800"``), which decodes into a Python ``str`` that nothing can
store or send on. :func:`surrogate_errors` finds such strings (and object keys) by path.
"""

from __future__ import annotations

import re
from typing import Any

from lam.errors import FieldError, field_path
from lam.jsonvalue import MAX_JSON_DEPTH

__all__ = [
    "ID_CHARS",
    "ID_PATTERN",
    "MAX_ID_CHARS",
    "check_id",
    "is_valid_id",
    "surrogate_errors",
]

MAX_ID_CHARS = 128
ID_CHARS = "letters, digits, '.', '_', ':' or '-'"
ID_PATTERN = rf"^[A-Za-z0-9._:-]{{1,{MAX_ID_CHARS}}}$"
"""The id rule as a regular expression (also in the published JSON Schema)."""

_ID = re.compile(ID_PATTERN)
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_REPORTED = 20


def is_valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None  # fullmatch: `$` alone would allow a final "\n"


def check_id(value: str) -> str:
    """Pydantic validator body: the id unchanged, or a ValueError that says the rule."""
    if not is_valid_id(value):
        raise ValueError(f"must be 1-{MAX_ID_CHARS} characters of {ID_CHARS}")
    return value


def surrogate_errors(value: Any) -> list[FieldError]:
    """Every string (or object key) in ``value`` holding an unpaired surrogate, by path.

    Walks dicts, lists and tuples iteratively, no deeper than JSON may nest (deep or cyclic
    input is safe, and refused by the JSON checks); other values are not text and are left
    to the other checks.
    """
    errors: list[FieldError] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    seen: set[int] = set()  # containers already walked: a shared or cyclic one only once
    while stack and len(errors) < _MAX_REPORTED:
        item, path = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                errors.append(_error(path, item))
            continue
        if not isinstance(item, (dict, list, tuple)):
            continue
        if len(path) > MAX_JSON_DEPTH or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                if isinstance(key, str) and _SURROGATE.search(key):
                    errors.append(_error(path, key, key=True))
                    continue
                stack.append((sub, (*path, key)))
        else:
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], (*path, index)))
    return errors


def _error(path: tuple[str | int, ...], text: str, *, key: bool = False) -> FieldError:
    found = _SURROGATE.search(text)
    code = f"\\u{ord(found.group()):04x}" if found else "?"
    what = "an object key" if key else "the text"
    return {
        "field": field_path(path),
        "message": f"{what} holds an unpaired surrogate ({code}): not valid Unicode",
    }
