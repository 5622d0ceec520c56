"""replan: after failures, one bounded round in which the LLM proposes what remains.

The done ToDos stay (their outputs feed the new ones) and are shown to the model as steps
1..k; it numbers its new steps on from k+1, and `after` may name either kind
(`graph.plan_steps.RemainingSteps`). Failed and skipped ToDos go. Replanning is a bonus: a
model that gives no usable answer leaves the answer to report what failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph.approval import mark_approvals
from graph.llm import LLMError
from graph.plan_proposal import current_plan, planning_catalogue, proposal
from graph.plan_schema import remaining_json_schema
from graph.plan_steps import max_steps, remaining_steps_model
from graph.plan_text import catalogue_listing
from graph.services import get_services
from graph.state import PlannerState
from lam import Plan, ToDo
from prompts.templates import REPLAN_SYSTEM

logger = logging.getLogger(__name__)


def _as_ran(plan: Plan, done: list[ToDo]) -> str:
    """The plan as it ran: done steps numbered (they may be named in `after`), the rest not."""
    numbered = {todo.id: n for n, todo in enumerate(done, 1)}
    steps = []
    for todo in plan.todos:
        step: dict[str, Any] = {
            "title": todo.title,
            "tool": todo.tool.name if todo.tool is not None else todo.executor,
        }
        if todo.id in numbered:
            step = {"number": numbered[todo.id], **step, "output": todo.output}
        else:
            step.update(status=todo.status, error=todo.error)
        steps.append(step)
    return json.dumps(steps, ensure_ascii=False, default=str)


async def replan(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    replans = state.get("replans", 0)
    if replans >= services.settings.max_replans or not services.models.available("planner"):
        return {}
    current = current_plan(state)
    done = [t for t in current.todos if t.status == "done"]
    catalogue = await planning_catalogue(services, config, state["request"])
    steps = max_steps(services.settings.max_todos)
    highest = len(done) + steps
    try:
        remaining = await services.models.structured(
            "planner",
            remaining_steps_model(highest, steps),
            [
                SystemMessage(
                    REPLAN_SYSTEM.format(
                        tools=catalogue_listing(catalogue),
                        tool_names=", ".join(catalogue.names()),
                        done_count=len(done),
                        next_number=len(done) + 1,
                        plan=_as_ran(current, done),
                    )
                ),
                HumanMessage(state["request"]),
            ],
            what="replan after a failure",
            json_schema=remaining_json_schema(catalogue, highest, steps),
        )
    except LLMError as exc:
        logger.warning("no replanning: %s", exc)
        return {"replans": replans + 1}
    if not remaining.steps:
        return {"replans": replans + 1}
    new_todos = remaining.to_todos(done, taken=current.ids, catalogue=catalogue)
    new_plan = Plan(goal=current.goal, todos=[*done, *new_todos])
    new_plan = mark_approvals(new_plan, services.executors, catalogue=catalogue)
    return {
        **proposal(state, config, new_plan, "replan", replans),
        "replans": replans + 1,
        "repairs": 0,
    }


def after_replan(state: PlannerState) -> Literal["check", "respond"]:
    """Check the new plan; with nothing left to run (no replanning), answer."""
    plan = current_plan(state)
    return "check" if any(t.status == "pending" for t in plan.todos) else "respond"
