"""replan: after failures, one bounded round in which the LLM proposes what remains."""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph.approval import mark_approvals
from graph.llm import LLMError
from graph.planning import RemainingTodos, executors_listing, proposal
from graph.services import get_services
from graph.state import PlannerState
from lam import Plan, ToDo
from prompts.templates import REPLAN_SYSTEM


def _as_ran(plan: Plan) -> str:
    return json.dumps(
        [
            {
                "id": t.id,
                "title": t.title,
                "executor": t.executor,
                "depends_on": t.depends_on,
                "status": t.status,
                "output": t.output,
                "error": t.error,
            }
            for t in plan.todos
        ],
        ensure_ascii=False,
        default=str,
    )


async def replan(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    replans = state.get("replans", 0)
    if replans >= services.settings.max_replans or not services.models.available("planner"):
        return {}
    current = Plan.model_validate(state["plan"])
    try:
        remaining = await services.models.structured(
            "planner",
            RemainingTodos,
            [
                SystemMessage(
                    REPLAN_SYSTEM.format(
                        executors=executors_listing(services.executors), plan=_as_ran(current)
                    )
                ),
                HumanMessage(state["request"]),
            ],
            what="replan after a failure",
        )
    except LLMError:
        # Replanning is a bonus: without it the answer reports what failed.
        return {}
    if not remaining.todos:
        return {"replans": replans + 1}
    # Done ToDos stay (their outputs feed the new ones); failed and skipped ones go.
    kept = [t for t in current.todos if t.status == "done"]
    new_plan = Plan(
        goal=current.goal,
        todos=[*kept, *(ToDo(**t.model_dump()) for t in remaining.todos)],
    )
    new_plan = mark_approvals(new_plan, services.executors)
    return {
        **proposal(state, config, new_plan, "replan", replans),
        "replans": replans + 1,
        "repairs": 0,
    }


def after_replan(state: PlannerState) -> Literal["check", "respond"]:
    plan = Plan.model_validate(state["plan"])
    return "check" if any(t.status == "pending" for t in plan.todos) else "respond"
