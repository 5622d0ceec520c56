"""What a step of a plan does to the world: the vocabulary approvals are decided by.

Kept apart from `graph.approval` (which needs the executor registry, and with it LangChain)
so that the intent registry's check, and `cpa-planner intents`, can name effects cheaply.
"""

from __future__ import annotations

from typing import Literal, get_args

Effect = Literal["none", "read", "change", "send", "book", "buy", "delete"]
EFFECTS: tuple[Effect, ...] = get_args(Effect)
#: Effects that leave the world as it was: no approval needed.
HARMLESS: frozenset[Effect] = frozenset({"none", "read"})
