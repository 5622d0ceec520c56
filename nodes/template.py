"""template: the plan of a request decided without an LLM, from its intent's plan template.

The template's steps declare their effects (`effect:` in the registry), so a read-only query
gets a plan with nothing to approve, and a step that changes something asks first.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.approval import mark_approvals
from graph.plan_proposal import proposal
from graph.services import get_services
from graph.state import PlannerState
from graph.tools.sources import tenant_of


async def template(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    found = state.get("intent") or {}
    made = services.intents.template_for(
        str(found.get("intent")),
        state["request"],
        language=found.get("language", "en"),
        read_only=bool(found.get("read_only")),
    )
    if made is None:  # `route` chose this node because the template exists
        raise RuntimeError(f"no plan template for {found.get('intent')!r}")
    # A template step that runs a tool takes its effect from the catalogue (`graph.approval`).
    catalogue = await services.tools.catalogue(tenant_of(config))
    plan = mark_approvals(made.plan, services.executors, made.effects, catalogue)
    return proposal(state, config, plan, "template", declared=made.effects)
