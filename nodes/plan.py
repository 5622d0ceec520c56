"""plan: the intent's plan template, or a plan the LLM writes (and rewrites on problems)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.llm import LLMError
from graph.planning import PlanDraft, executors_listing, plan_text
from graph.services import Services, get_services
from graph.state import PlannerState
from lam import Plan
from prompts.templates import PLAN_REPAIR, PLAN_SYSTEM


async def _llm_plan(state: PlannerState, services: Services) -> Plan:
    found = state.get("intent") or {}
    messages: list[Any] = [
        SystemMessage(
            PLAN_SYSTEM.format(
                max_todos=services.settings.max_todos,
                executors=executors_listing(services.executors),
                intent=found.get("intent", "unknown"),
            )
        ),
        HumanMessage(state["request"]),
    ]
    problems = state.get("plan_problems") or []
    if problems and state.get("plan"):
        # A repair: the model sees its own plan and what is wrong with it.
        messages.append(AIMessage(json.dumps(state["plan"])))
        messages.append(HumanMessage(PLAN_REPAIR.format(problems="\n".join(problems))))
    draft = await services.models.structured(
        "planner", PlanDraft, messages, what="plan this request"
    )
    return draft.to_plan()


async def plan(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    cid = lamlog.conversation_id(state, config)
    found = state.get("intent") or {}
    repairing = bool(state.get("plan_problems"))
    template = None
    if not repairing:
        template = services.intents.plan_for(str(found.get("intent")), state["request"])
    try:
        new_plan = template or await _llm_plan(state, services)
    except LLMError as exc:
        return lamlog.fail(state, config, exc.code, str(exc))

    round_no = state.get("repairs", 0)
    propose = lamlog.with_id(
        lamlog.planner(state, config).propose(lamlog.requester(state), new_plan),
        lamlog.stable_id(cid, "propose", lamlog.current_request(state)["id"], "plan", round_no),
    )
    return {
        "plan": new_plan.model_dump(mode="json"),
        "plan_problems": [],
        "lam": [propose.to_dict()],
        "messages": [AIMessage(plan_text(new_plan))],
    }
