"""Which ToDos need the person's `agree`: what a step does to the world decides, not who wrote it.

Every step has an *effect*. A step that runs a tool takes its tool's, from the catalogue
(`graph.tools`): the agent, the MCP server or the file that declared the tool; a tool that
is not in the catalogue (any more) is taken to change something. Other steps' effect is
declared by trusted sources: an executor for all its steps (`llm` writes text inside the
conversation: `none`), an executor per step (`http`: by method), or a plan template per
step (`effect:` in the intent registry). A step whose effect nobody trusted declared (a
`desktop` step an LLM wrote) is taken to change something. A template step that runs a
tool keeps the template's effect only where it asks for more than the tool's.

A step that changes the world outside the conversation (any effect but `none` and `read`)
needs approval under the default policy. The planner model's `requires_approval` can add
approvals, never remove them: `mark_approvals` only ever turns flags on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from graph.effects import HARMLESS, UNKNOWN_EFFECT, Effect, is_effect
from graph.executor_registry import ExecutorRegistry
from graph.tools.catalogue import Catalogue
from lam import Plan, ToDo


def step_effect(
    todo: ToDo,
    executors: ExecutorRegistry,
    declared: Effect | None = None,
    catalogue: Catalogue | None = None,
) -> Effect:
    """The effect of one step: its tool's (see the module docstring), else declared by a
    trusted source, else its executor's, else change."""
    if todo.tool is not None:
        entry = catalogue.tool(todo.tool.name) if catalogue is not None else None
        tool_effect = entry.tool.effect if entry is not None else UNKNOWN_EFFECT
        if declared is not None and tool_effect in HARMLESS and declared not in HARMLESS:
            return declared
        return tool_effect
    if declared is not None:
        return declared
    if todo.executor not in executors:
        return UNKNOWN_EFFECT
    executor = executors.get(todo.executor)
    per_step = getattr(executor, "effect_for", None)
    if callable(per_step):
        effect: Effect | None = per_step(todo)
        return effect if effect is not None else UNKNOWN_EFFECT
    fixed: Effect | None = getattr(executor, "effect", None)
    return fixed if fixed is not None else UNKNOWN_EFFECT


def needs_approval(effect: Effect) -> bool:
    return effect not in HARMLESS


def mark_approvals(
    plan: Plan,
    executors: ExecutorRegistry,
    declared: Mapping[str, Effect] | None = None,
    catalogue: Catalogue | None = None,
) -> Plan:
    """The plan with `requires_approval` set on every step whose effect changes the world.

    `declared` maps ToDo ids to the effects a trusted source (a plan template) declared for
    them; an LLM-written plan has none. `catalogue` gives the effects of the tools steps
    run (without it, a step that runs a tool is taken to change something). Flags already
    set stay set.
    """
    declared = declared or {}
    todos = [
        todo
        if todo.requires_approval
        or not needs_approval(step_effect(todo, executors, declared.get(todo.id), catalogue))
        else todo.model_copy(update={"requires_approval": True})
        for todo in plan.todos
    ]
    return Plan(goal=plan.goal, todos=todos)


class DeclaredEffects(TypedDict):
    """The state's `plan_effects`: what a trusted template declared, for one proposal.

    Tied to the `propose` that carried the plan, so that effects declared for one plan are
    never read for another (a replan, a later turn with the same ToDo ids).
    """

    propose: str  # the id of the `propose` message whose plan these effects are for
    effects: dict[str, Effect]  # ToDo id -> declared effect


def declared_record(propose_id: str, effects: Mapping[str, Effect]) -> DeclaredEffects:
    """The `plan_effects` state value for a plan proposed as `propose_id`."""
    return {"propose": propose_id, "effects": dict(effects)}


def declared_for(record: Mapping[str, Any] | None, propose_id: str) -> dict[str, Effect]:
    """The effects declared for the plan of this `propose`; none if the record is another's."""
    if not record or record.get("propose") != propose_id:
        return {}
    effects = record.get("effects") or {}
    return {str(k): v for k, v in effects.items() if is_effect(v)}
