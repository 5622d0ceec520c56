"""The planner's executors described as tools: a free-form step of each (docs/tools.md).

An executor says how the planner sees it with `input_schema` (what a step's `inputs` hold),
`returns` and `effect` (`graph.executor_registry.Executor`). One that declares no schema takes any
object; one that decides its effect per step (`effect_for`, e.g. `http` by method) shows
`change` here, the most its steps can do. One that only runs its tools says
`free_form = False` and is no entry of its own.
"""

from __future__ import annotations

from typing import Any

from graph.effects import UNKNOWN_EFFECT
from graph.executor_registry import Executor, ExecutorRegistry
from graph.tools.catalogue import Entry
from lam import Tool

#: The arguments' schema of an executor that declares none: any object.
ANY_INPUTS: dict[str, Any] = {"type": "object"}


def executor_tool(executor: Executor) -> Tool:
    effect = getattr(executor, "effect", None)
    return Tool(
        name=executor.name,
        description=executor.description,
        input_schema=dict(getattr(executor, "input_schema", None) or ANY_INPUTS),
        returns=str(getattr(executor, "returns", "") or ""),
        effect=effect if isinstance(effect, str) else UNKNOWN_EFFECT,
        executor=executor.name,
    )


def executor_entries(registry: ExecutorRegistry) -> list[Entry]:
    """The executors a plan step may name for a free-form step (not those that only run
    their tools, `free_form = False`: an MCP server's executor, say)."""
    return [
        Entry(executor_tool(e), "executor", "executor", e.name)
        for e in registry
        if getattr(e, "free_form", True)
    ]


def runs_tools(executor: Executor) -> bool:
    """Whether catalogue tools may name this executor as the one that runs them."""
    return bool(getattr(executor, "runs_tools", False))
