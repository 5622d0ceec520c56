"""plan: the LLM planner writes a plan covering the whole request (and rewrites it on problems).

What the `intent` step found goes into the prompt as hints: the intents seen, and for a
request with several actions, each action, so that the plan covers all of them. Approvals are
then set by what each step does (`graph.approval`): the model's flags can add, never remove.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.approval import mark_approvals
from graph.llm import LLMError
from graph.planning import PlanDraft, executors_listing, proposal
from graph.services import Services, get_services
from graph.state import IntentFound, PlannerState
from lam import Plan
from prompts.templates import LANGUAGE_NAMES, PLAN_ACTIONS, PLAN_HINTS, PLAN_REPAIR, PLAN_SYSTEM


def _hints(found: IntentFound) -> str:
    """What the tiers before the planner found, as lines for its prompt."""
    lines = []
    parts = (found.get("compound") or {}).get("parts") or []
    if parts:
        actions = "\n".join(f"{n}. {part}" for n, part in enumerate(parts, 1))
        lines.append(PLAN_ACTIONS.format(count=len(parts), actions=actions))
    hints = list(found.get("hints") or [])
    if found.get("intent") and found["intent"] not in hints:
        hints.insert(0, str(found["intent"]))
    if hints:
        lines.append(PLAN_HINTS.format(intents=", ".join(hints)))
    return "\n".join(lines)


async def _llm_plan(state: PlannerState, services: Services) -> Plan:
    found = state.get("intent") or {}
    messages: list[Any] = [
        SystemMessage(
            PLAN_SYSTEM.format(
                max_todos=services.settings.max_todos,
                executors=executors_listing(services.executors),
                hints=_hints(found),
                language=LANGUAGE_NAMES[found.get("language", "en")],
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
    try:
        new_plan = await _llm_plan(state, services)
    except LLMError as exc:
        return lamlog.fail(state, config, exc.code, str(exc))
    new_plan = mark_approvals(new_plan, services.executors)
    return proposal(state, config, new_plan, "plan", state.get("repairs", 0))


def after_plan(state: PlannerState) -> Literal["check", "respond"]:
    return "respond" if state.get("status") == "failed" else "check"
