"""plan: the LLM planner writes a plan covering the whole request (and rewrites it on problems).

What the `intent` step found goes into the prompt as hints: the intents seen, and for a
request with several actions, each action, so that the plan covers all of them. The model
sees the tenant's action catalogue (`graph.tools`), narrowed to the tools closest to the
request when it is larger than `planner_max_tools`, and writes numbered steps, each naming
one entry and its arguments (`graph.plan_steps.PlanDraft`, held to `plan_json_schema`), which
become the plan. Approvals are then set by what each step does (`graph.approval`): the
model's flags can add, never remove.

`draft_plan` is one such call on its own (a request and a catalogue in, a plan out), for
whoever wants the planner without the graph: `benchmarks/`, a test.

A plan goes back to the model, within `max_plan_repairs`, when `check` finds problems in it
and also when the model's answer was no plan at all: cut off at the token limit
(`llm_truncated`) or not in the shape asked for (`llm_bad_output`). Each such round is
logged as a `failure` to the planner, like `check`'s; when the budget is spent, the turn
ends with a `failure` of that code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.approval import mark_approvals
from graph.llm import ChatModels, LLMError, LLMOutputError, LLMTruncatedError
from graph.plan_proposal import planning_catalogue, proposal
from graph.plan_schema import plan_json_schema
from graph.plan_steps import draft_json, max_steps, plan_draft_model
from graph.plan_text import catalogue_listing
from graph.services import get_services
from graph.state import IntentFound, Language, PlannerState, action_follows, action_parts
from graph.tools.catalogue import Catalogue
from graph.tools.narrowing import action_shortlists
from lam import Plan
from nodes.early_start import EarlyStart
from prompts.templates import (
    LANGUAGE_NAMES,
    PLAN_ACTION_TOOLS,
    PLAN_ACTIONS,
    PLAN_BAD_ANSWER,
    PLAN_CUT_OFF,
    PLAN_FOLLOWS,
    PLAN_HINTS,
    PLAN_REPAIR,
    PLAN_SYSTEM,
)

#: How much of an answer that did not fit goes back to the model (the context is small).
REJECTED_SHOWN = 1500


def _hints(found: IntentFound, shortlists: Sequence[Sequence[str]] = ()) -> str:
    """What the tiers before the planner found, as lines for its prompt; `shortlists`: the
    tools closest to each action (its step may name one of them, or an executor)."""
    lines = []
    parts = action_parts(found)
    if parts:
        follows = action_follows(found)
        actions = "\n".join(
            f"{n}. {part}"
            + (
                PLAN_ACTION_TOOLS.format(tools=", ".join(shortlists[n - 1]))
                if n - 1 < len(shortlists) and shortlists[n - 1]
                else ""
            )
            + (PLAN_FOLLOWS.format(previous=n - 1) if after else "")
            for n, (part, after) in enumerate(zip(parts, follows, strict=True), 1)
        )
        lines.append(PLAN_ACTIONS.format(count=len(parts), actions=actions))
    hints = list(found.get("hints") or [])
    if found.get("intent") and found["intent"] not in hints:
        hints.insert(0, str(found["intent"]))
    if hints:
        lines.append(PLAN_HINTS.format(intents=", ".join(hints)))
    return "\n".join(lines)


def planning_prompt(
    request: str,
    catalogue: Catalogue,
    steps: int,
    found: IntentFound | None = None,
    action_tools: int = 0,
) -> list[Any]:
    """The planner model's first question: the catalogue, the hints, the request; beside
    each action the front door found, its `action_tools` closest tools."""
    shortlists = _shortlists(catalogue, request, found, action_tools)
    found = found or {}
    language: Language = found.get("language", "en")
    # The tools the steps for the actions may name first, the others last (tools that fit
    # none of the actions: a small model favours what it read first and last).
    shortlisted = [name for shortlist in shortlists for name in shortlist]
    listed = catalogue.leading(shortlisted) if shortlisted else catalogue
    return [
        SystemMessage(
            PLAN_SYSTEM.format(
                max_steps=steps,
                tool_names=", ".join(listed.names()),
                tools=catalogue_listing(listed),
                hints=_hints(found, shortlists),
                language=LANGUAGE_NAMES[language],
            )
        ),
        HumanMessage(request),
    ]


async def draft_plan(
    models: ChatModels,
    request: str,
    catalogue: Catalogue,
    steps: int,
    found: IntentFound | None = None,
    action_tools: int = 0,
) -> Plan:
    """One planning call: the prompt and the schema of this catalogue, the answer as a plan
    with a step at least for each action the front door found (`found`'s parts), the
    step for action N one of its `action_tools` closest tools (0: any).

    The plan is not checked (`nodes.check.problems_of` does that). Raises `LLMError`.
    """
    draft = await models.structured(
        "planner",
        plan_draft_model(steps),
        planning_prompt(request, catalogue, steps, found, action_tools),
        what="plan this request",
        json_schema=_plan_schema(catalogue, steps, found, action_tools, request),
    )
    return draft.to_plan(catalogue)


def _plan_schema(
    catalogue: Catalogue,
    steps: int,
    found: IntentFound | None,
    action_tools: int,
    request: str,
) -> dict[str, Any]:
    """The schema of a plan for the actions the front door found (`found`; None: a plan
    held to the catalogue alone). A step at least per action (as `check` demands of a
    first plan), so the grammar cannot end the plan before each has had one; an action
    that follows another waits for it; its step names one of the action's `action_tools`
    closest tools or an executor: a small model picks better among three than among twelve."""
    return plan_json_schema(
        catalogue,
        steps,
        len(action_parts(found)),
        action_follows(found),
        _shortlists(catalogue, request, found, action_tools),
    )


def _shortlists(
    catalogue: Catalogue, request: str, found: IntentFound | None, action_tools: int
) -> list[list[str]]:
    """The `action_tools` tools closest to each action the front door found (`found`), or to
    the request when it found one action; none without the front door's reading."""
    if found is None:
        return []
    return action_shortlists(catalogue, action_parts(found) or [request], action_tools)


def plan_messages(
    state: PlannerState, catalogue: Catalogue, steps: int, action_tools: int = 0
) -> list[Any]:
    """What the planner model is asked: the request, and in a repair its answer and problems."""
    messages = planning_prompt(
        state["request"], catalogue, steps, state.get("intent"), action_tools
    )
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
    steps = max_steps(settings.max_todos)
    parts = action_parts(state.get("intent"))
    catalogue = await planning_catalogue(
        services, config, state["request"], state.get("plan"), parts
    )
    what = "repair the plan" if state.get("plan_problems") else "plan this request"
    # Streamed: steps that need no approval start while the model writes (nodes.early_start).
    early = (
        await EarlyStart.begin(state, config, services, steps) if settings.stream_plans else None
    )
    # The front door's actions shape a first plan; a replanning round's steps are free.
    found = None if state.get("replans") else state.get("intent")
    schema = plan_draft_model(steps)
    json_schema = _plan_schema(
        catalogue, steps, found, settings.planner_action_tools, state["request"]
    )
    messages = plan_messages(state, catalogue, steps, settings.planner_action_tools)
    try:
        if early is None:
            draft = await services.models.structured(
                "planner", schema, messages, what, json_schema=json_schema
            )
        else:
            draft = await early.written(services.models, schema, messages, what, json_schema)
    except LLMError as exc:
        if isinstance(exc, LLMOutputError) and repairs < settings.max_plan_repairs:
            update = _ask_again(state, config, exc, repairs)
        else:
            output = isinstance(exc, LLMOutputError)
            tries = f" (after {repairs} repair(s))" if repairs and output else ""
            update = lamlog.fail(state, config, exc.code, f"{exc}{tries}")
        if early is not None:  # what started early runs to its end, and is kept
            await early.settled()
            update = early.after(update)
        return update
    new_plan = mark_approvals(draft.to_plan(catalogue), services.executors, catalogue=catalogue)
    update = proposal(state, config, new_plan, "plan", repairs)
    return await early.finish(new_plan, update) if early is not None else update


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
