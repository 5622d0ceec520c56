"""What a step of a plan does to the world: the vocabulary approvals are decided by.

An effect is one lower-case word (`lam.tools.EFFECT_PATTERN`): `none` and `read` leave the
world as it was; any other word says what the step changes (`write`, `send`, `book`, `buy`,
`pay`, `delete`, ... or just `change`). The vocabulary is open, because tools bring their
own words, but it cannot be used to slip past an approval: a word nobody here knows counts
as changing something, like every word but `none` and `read`.

Kept apart from `graph.approval` (which needs the executor registry, and with it LangChain)
so that the intent registry's check, and `cpa-planner intents`, can name effects cheaply.
"""

from __future__ import annotations

import re
from typing import Any

from lam.tools import EFFECT_PATTERN, HARMLESS_EFFECTS, UNDECLARED_EFFECT

#: One lower-case word; `Effect` is a plain `str` so tools may bring their own words.
Effect = str
#: The words this project's own templates and executors use (any other word is allowed).
KNOWN_EFFECTS: tuple[Effect, ...] = (
    "none",
    "read",
    "write",
    "change",
    "send",
    "book",
    "buy",
    "pay",
    "delete",
)
#: Effects that leave the world as it was: no approval needed.
HARMLESS: frozenset[Effect] = HARMLESS_EFFECTS
#: What a step nobody declared an effect for is taken to do.
UNKNOWN_EFFECT: Effect = UNDECLARED_EFFECT
_WORD = re.compile(EFFECT_PATTERN)


def is_effect(value: Any) -> bool:
    """Whether `value` can be an effect: one lower-case word (letters, digits, `_`, `-`)."""
    return isinstance(value, str) and _WORD.fullmatch(value) is not None


def describe_effects() -> str:
    """The rule in a few words, for error messages."""
    return (
        "none, read, or one lower-case word for what it changes ("
        + ", ".join(KNOWN_EFFECTS[2:])
        + ", ...)"
    )
