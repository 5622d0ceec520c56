"""The planner's side of a plan in a run: the catalogue a planning call sees, the turn's
plan, and the state update that proposes a plan to the requester."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.approval import declared_record
from graph.effects import Effect
from graph.plan_text import plan_text
from graph.services import Services
from graph.state import PlannerState
from graph.telemetry import trace_metadata
from graph.tools.catalogue import Catalogue
from graph.tools.narrowing import narrow
from graph.tools.sources import tenant_of
from lam import Plan


async def planning_catalogue(
    services: Services,
    config: RunnableConfig,
    request: str,
    plan: Plan | None = None,
    parts: Sequence[str] = (),
) -> Catalogue:
    """The catalogue a planning call of this run shows the model: the run's tenant's, with
    at most `planner_max_tools` tools, those closest to the request and to each of its
    actions `parts` (and those `plan`, the plan under repair, already names)."""
    full = await services.tools.catalogue(tenant_of(config))
    named = [t.tool.name for t in plan.todos if t.tool is not None] if plan is not None else []
    return narrow(full, request, services.settings.planner_max_tools, keep=named, parts=parts)


def current_plan(state: PlannerState) -> Plan:
    """The turn's plan, for a step that runs only once there is one (already validated)."""
    plan = state.get("plan")
    if plan is None:
        raise RuntimeError("no plan in the state")
    return plan


def proposal(
    state: PlannerState,
    config: RunnableConfig,
    plan: Plan,
    *purpose: object,
    declared: Mapping[str, Effect] | None = None,
) -> dict[str, Any]:
    """The state update that proposes `plan` to the requester (`purpose` keys its message id).

    `declared`: the effects a trusted template declared for its steps, kept with the
    proposal's id (`plan_effects`) so that `approve` can check the plan again by them.
    """
    cid = lamlog.conversation_id(state, config)
    propose = lamlog.planner(state, config).propose(
        lamlog.requester(state),
        plan,
        message_id=lamlog.stable_id(cid, "propose", lamlog.current_request(state)["id"], *purpose),
        metadata=trace_metadata(),  # whoever approves can continue the trace
    )
    return {
        "plan": plan,
        "plan_problems": [],
        "rejected_answer": None,
        "plan_effects": declared_record(propose.id, declared or {}),
        "lam": [propose.to_dict()],
        "messages": [AIMessage(plan_text(plan))],
    }
