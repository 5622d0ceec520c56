"""plan: the LLM planner writes a plan covering the whole request (and rewrites it on problems).

What the `intent` step found goes into the prompt as hints: the intents seen, and for a
request with several actions, each action, so that the plan covers all of them. The model
writes numbered steps (`graph.planning.PlanDraft`), which become the plan. Approvals are
then set by what each step does (`graph.approval`): the model's flags can add, never remove.

A plan goes back to the model, within `max_plan_repairs`, when `check` finds problems in it
and also when the model's answer was no plan at all: cut off at the token limit
(`llm_truncated`) or not in the shape asked for (`llm_bad_output`). Each such round is
logged as a `failure` to the planner, like `check`'s; when the budget is spent, the turn
ends with a `failure` of that code.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.approval import mark_approvals
from graph.llm import LLMError, LLMOutputError, LLMTruncatedError
from graph.planning import (
    draft_json,
    executors_listing,
    max_steps,
    plan_draft_model,
    proposal,
)
from graph.services import Services, get_services
from graph.state import IntentFound, PlannerState
from prompts.templates import (
    LANGUAGE_NAMES,
    PLAN_ACTIONS,
    PLAN_BAD_ANSWER,
    PLAN_CUT_OFF,
    PLAN_HINTS,
    PLAN_REPAIR,
    PLAN_SYSTEM,
)

#: How much of an answer that did not fit goes back to the model (the context is small).
REJECTED_SHOWN = 1500


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


def plan_messages(state: PlannerState, services: Services) -> list[Any]:
    """What the planner model is asked: the request, and in a repair its answer and problems."""
    found = state.get("intent") or {}
    names = services.executors.names()
    messages: list[Any] = [
        SystemMessage(
            PLAN_SYSTEM.format(
                max_steps=max_steps(services.settings.max_todos),
                executor_names=", ".join(names),
                executors=executors_listing(services.executors),
                hints=_hints(found),
                language=LANGUAGE_NAMES[found.get("language", "en")],
            )
        ),
        HumanMessage(state["request"]),
    ]
    problems = state.get("plan_problems") or []
    if problems:
        # A repair: the model sees its own answer and what is wrong with it.
        previous = state.get("rejected_answer")
        current = state.get("plan")
        if previous is None and current is not None:
            previous = draft_json(current)
        if previous:
            messages.append(AIMessage(previous))
        listed = "\n".join(f"- {p}" for p in problems)
        messages.append(HumanMessage(PLAN_REPAIR.format(problems=listed)))
    return messages


async def plan(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    settings = services.settings
    repairs = state.get("repairs", 0)
    schema = plan_draft_model(tuple(services.executors.names()), max_steps(settings.max_todos))
    what = "repair the plan" if state.get("plan_problems") else "plan this request"
    try:
        draft = await services.models.structured(
            "planner", schema, plan_messages(state, services), what=what
        )
    except LLMOutputError as exc:
        if repairs >= settings.max_plan_repairs:
            tries = f" (after {repairs} repair(s))" if repairs else ""
            return lamlog.fail(state, config, exc.code, f"{exc}{tries}")
        return _ask_again(state, config, exc, repairs)
    except LLMError as exc:
        return lamlog.fail(state, config, exc.code, str(exc))
    new_plan = mark_approvals(draft.to_plan(), services.executors)
    return proposal(state, config, new_plan, "plan", repairs)


def _ask_again(
    state: PlannerState, config: RunnableConfig, exc: LLMOutputError, repairs: int
) -> dict[str, Any]:
    """An answer that was no plan goes back to the model, logged like `check`'s refusals."""
    if isinstance(exc, LLMTruncatedError):
        problem, shown = PLAN_CUT_OFF, None  # a cut-off answer is long: not worth showing
    else:
        problem = PLAN_BAD_ANSWER.format(problems=exc.detail or "not a plan")
        shown = (exc.raw or "")[:REJECTED_SHOWN] or None
    cid = lamlog.conversation_id(state, config)
    request_id = lamlog.current_request(state)["id"]
    refusal = lamlog.planner(state, config).failure(
        lamlog.PLANNER,
        exc.code,
        str(exc),
        message_id=lamlog.stable_id(cid, "plan-answer", request_id, repairs),
    )
    return {
        "plan_problems": [problem],
        "rejected_answer": shown,
        "repairs": repairs + 1,
        "lam": [refusal.to_dict()],
    }


def after_plan(state: PlannerState) -> Literal["plan", "check"]:
    # Problems right after `plan`: the answer was no plan, and goes back for another try.
    return "plan" if state.get("plan_problems") else "check"
