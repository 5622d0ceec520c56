"""respond: the answer, as an `inform` (topic `answer`) and as the chat's last message."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.llm import LLMError, LLMNotConfiguredError
from graph.planning import plan_text
from graph.services import Services, get_services
from graph.state import PlannerState, Status
from lam import Performative, Plan
from prompts.templates import ANSWER_SYSTEM, SUMMARY_SYSTEM

logger = logging.getLogger(__name__)

SMALLTALK_FALLBACK = "Hello! Tell me what to do and I will plan it. {abilities}"


def _abilities(services: Services) -> str:
    intents = services.intents
    planned = [n for n in intents.names() if intents.intents[n].kind == "plan"]
    lines = "; ".join(f"{n} ({intents.intents[n].description})" for n in planned)
    return f"I can help with: {lines}."


def _plan_summary(plan: Plan, failures: list[str]) -> str:
    lines = [f"{plan.goal}:"]
    for todo in plan.todos:
        if todo.status == "done":
            out = todo.output if isinstance(todo.output, str) else repr(todo.output)
            shown = f": {out}" if todo.output not in (None, "", {}) else ""
            lines.append(f"- {todo.title}: done{shown}")
        else:
            lines.append(f"- {todo.title}: {todo.status} ({todo.error})")
    lines.extend(f"- earlier failure: {f}" for f in failures)
    return "\n".join(lines)


async def _answer(state: PlannerState, services: Services) -> tuple[str, Status, dict[str, Any]]:
    """The answer's text, the conversation's status and its result."""
    result = dict(state.get("result") or {})
    if state.get("status") == "failed":
        error = result.get("error", {})
        return (
            f"Sorry, I could not do that: {error.get('message', 'unknown error')}",
            "failed",
            result,
        )
    if "refused" in result:
        return f"Plan not carried out: {result['refused']}", "done", result

    if not state.get("plan"):
        name = (state.get("intent") or {}).get("intent")
        spec = services.intents.intents.get(str(name))
        if spec is None:
            text = f"I cannot plan that request. {_abilities(services)}"
            return text, "done", {"text": text}
        try:
            text = await services.models.text(
                "executor",
                [SystemMessage(ANSWER_SYSTEM), HumanMessage(state["request"])],
                what=f"answer a {name} request",
            )
        except LLMNotConfiguredError:
            if spec.name != "smalltalk":
                raise
            text = SMALLTALK_FALLBACK.format(abilities=_abilities(services))
        return text, "done", {"text": text}

    plan = Plan.model_validate(state["plan"])
    ok = all(t.status == "done" for t in plan.todos)
    outputs = {t.id: t.output for t in plan.todos if t.status == "done"}
    failures = [
        f"{m['content'].get('todo_id')}: {m['content']['error']['message']}"
        for m in _this_turn(state)
        if m["performative"] == Performative.FAILURE.value
        and m["content"].get("todo_id")
        and plan.by_id().get(m["content"]["todo_id"]) is None
    ]
    text = _plan_summary(plan, failures)
    if services.models.available("executor"):
        try:
            text = await services.models.text(
                "executor",
                [
                    SystemMessage(SUMMARY_SYSTEM),
                    HumanMessage(f"Request: {state['request']}\n\n{plan_text(plan)}\n\n{text}"),
                ],
                what="summarise the results",
            )
        except Exception as exc:
            # The results stand without the summary; say why it is missing, keep the plain one.
            logger.warning("summary by the LLM failed, answering from the template: %s", exc)
    return text, ("done" if ok else "failed"), {"text": text, "outputs": outputs}


def _this_turn(state: PlannerState) -> list[dict[str, Any]]:
    log = state.get("lam") or []
    start = max(i for i, m in enumerate(log) if m["performative"] == Performative.REQUEST.value)
    return log[start:]


async def respond(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    failure: list[dict[str, Any]] = []
    try:
        text, status, result = await _answer(state, services)
    except LLMError as exc:
        failed = lamlog.fail(state, config, exc.code, str(exc))
        failure = failed["lam"]
        text, status, result = f"Sorry, I could not do that: {exc}", "failed", failed["result"]
    cid = lamlog.conversation_id(state, config)
    request_id = lamlog.current_request(state)["id"]
    answer = lamlog.with_id(
        lamlog.planner(state, config).inform(
            lamlog.requester(state), "answer", text=text, status=status
        ),
        lamlog.stable_id(cid, "answer", request_id),
    )
    answer = answer.model_copy(update={"in_reply_to": request_id})
    return {
        "lam": [*failure, answer.to_dict()],
        "messages": [AIMessage(text)],
        "status": status,
        "result": result,
    }
