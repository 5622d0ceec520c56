"""check: the plan DAG checks; problems go back to the planner a bounded number of times.

Besides `lam.dag.validate_plan` (ids, dependencies, cycles, executors, size), every step's
tool and arguments are checked against the tenant's catalogue (`graph.tools.arguments`: an
unknown tool, a missing or wrong argument, a reference to a step it does not depend on,
each named by step, tool and argument), and a plan for a request with several actions
must have a step for each: fewer ToDos than actions means the planner dropped one, which
is worth a repair (a wrong plan is worse than a question).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.plan_proposal import current_plan
from graph.plan_text import sentences
from graph.services import get_services
from graph.state import PlannerState, action_parts
from graph.tools.arguments import plan_problems
from graph.tools.catalogue import Catalogue
from graph.tools.sources import tenant_of
from lam import Performative, Plan
from lam.dag import validate_plan

_LISTED = 20


def problems_of(
    plan: Plan, catalogue: Catalogue, executors: Collection[str], max_todos: int
) -> list[str]:
    """The plan's structural problems and its tools' and arguments' ones, in words."""
    problems = []
    for problem in validate_plan(plan, executors=executors, max_todos=max_todos):
        if problem.code == "unknown_executor" and problem.todo_id:
            # A step naming neither: the model should hear of the tools too.
            name = plan.todo(problem.todo_id).executor
            tools = ", ".join(e.name for e in catalogue.tools[:_LISTED]) or "none"
            more = " and more" if len(catalogue.tools) > _LISTED else ""
            problems.append(
                f"ToDo {problem.todo_id!r} names {name!r}, which is neither a tool nor an "
                f"executor (tools: {tools}{more}; executors: {', '.join(sorted(executors))})."
            )
        else:
            problems.append(str(problem))
    return problems + [str(p) for p in plan_problems(plan, catalogue)]


def coverage_problems(plan: Plan, state: PlannerState) -> list[str]:
    """A first plan with fewer ToDos than the request has actions leaves one out (its
    ToDos may have run already: `nodes.early_start`)."""
    parts = action_parts(state.get("intent"))
    if state.get("replans") or len(plan.todos) >= len(parts):
        return []
    listed = "; ".join(f"{n}. {part}" for n, part in enumerate(parts, 1))
    return [
        f"The request asks for {len(parts)} actions ({listed}), but the plan has only "
        f"{len(plan.todos)} ToDo(s): add a ToDo for every action."
    ]


async def check(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    current = current_plan(state)
    catalogue = await services.tools.catalogue(tenant_of(config))
    problems = problems_of(
        current, catalogue, services.executors.names(), services.settings.max_todos
    )
    problems += coverage_problems(current, state)
    if not problems:
        return {"plan_problems": []}
    propose = lamlog.last(state.get("lam") or [], Performative.PROPOSE)
    in_reply_to = propose["id"] if propose else None
    repairs = state.get("repairs", 0)
    summary = sentences(problems)  # "a; b." rather than "a.; b."
    if repairs >= services.settings.max_plan_repairs or not services.models.available("planner"):
        tries = f" after {repairs} repair(s)" if repairs else ""
        return lamlog.fail(
            state,
            config,
            "invalid_plan",
            f"the plan is still invalid{tries}: {summary}",
            in_reply_to=in_reply_to,
        )
    cid = lamlog.conversation_id(state, config)
    refusal = lamlog.planner(state, config).failure(
        lamlog.PLANNER,
        "invalid_plan",
        summary,
        in_reply_to=in_reply_to,
        message_id=lamlog.stable_id(cid, "check", in_reply_to, repairs),
    )
    return {"plan_problems": problems, "repairs": repairs + 1, "lam": [refusal.to_dict()]}


def after_check(state: PlannerState) -> Literal["plan", "approve"]:
    return "plan" if state.get("plan_problems") else "approve"
