"""respond: the answer, as an `inform` (topic `answer`) and as the chat's last message.

The answer is in the request's language. What writes it:
- a failed turn or a refused plan: a fixed sentence with the reason;
- a request answered directly: a fitting canned reply for small talk, the executor model
  for a question, and a short "what I can do" when there was nothing to do;
- a plan that ran: the ToDos' results, listed (outputs as text, or JSON); the executor
  model summarises them only for a plan the LLM planner wrote (a template plan's results
  need no LLM), or for any plan with the setting `summarize_template_plans`.

A model's text is shown only when it is whole and fit to show (`graph.text_check`): a
summary cut off at the token limit, looping, or naming ToDos the plan does not have is asked
for once more, saying what was wrong, and then replaced by the listed results; a direct
answer cut off or looping ends the turn with that failure.

Where the executor model writes the answer, its words go to LangGraph's custom stream as
they come (`{"token": ...}`, see `graph.llm`); the log still gets one `inform` per answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.llm import LLMError, LLMNotConfiguredError, LLMOutputError
from graph.plan_text import plan_text
from graph.services import Services, get_services
from graph.state import PlannerState, Status
from graph.text_check import unusable
from lam import Performative, Plan, ToDo
from lam.log import performative_of
from prompts.phrasebook import phrase
from prompts.templates import AGAIN, ANSWER_AGAIN, ANSWER_SYSTEM, SUMMARY_SYSTEM

logger = logging.getLogger(__name__)
#: How often the executor model is asked for a summary fit to show (then: the listed results).
SUMMARY_ATTEMPTS = 2
#: How long a second answer may be, in words (said to the model).
AGAIN_WORDS = 120


def _abilities(services: Services, language: str) -> str:
    intents = services.intents
    planned = [n for n in intents.names() if intents.intents[n].kind == "plan"]
    listing = "; ".join(intents.intents[n].label(language) for n in planned)
    return phrase(language, "abilities", intents=listing)


def _why(todo: ToDo) -> str:
    """A ToDo's error in parentheses, without repeating its status ("skipped: ...")."""
    error = (todo.error or "").strip()
    for word in (todo.status, "failed", "skipped"):
        if error.startswith(f"{word}: "):
            error = error[len(word) + 2 :]
            break
    return f" ({error})" if error else ""


def _shown(output: Any) -> str:
    """A ToDo's output as text: a string as it is, anything else as JSON (never a repr)."""
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, default=str)


def _failed_causes(plan: Plan, todo: ToDo) -> list[str]:
    """The failed ToDos a skipped one waited for, directly or through skipped ones."""
    by_id = plan.by_id()
    causes: set[str] = set()
    seen: set[str] = set()
    waiting = list(todo.depends_on)
    while waiting:
        dep = by_id.get(waiting.pop())
        if dep is None or dep.id in seen:
            continue
        seen.add(dep.id)
        if dep.status == "failed":
            causes.add(dep.id)
        elif dep.status == "skipped":
            waiting.extend(dep.depends_on)
    return [i for i in plan.ids if i in causes]


def _plan_summary(plan: Plan, failures: list[str], language: str) -> str:
    lines = [f"{plan.goal}:"]
    for todo in plan.todos:
        if todo.status == "done":
            shown = f": {_shown(todo.output)}" if todo.output not in (None, "", {}) else ""
            lines.append(f"- {todo.title}: {phrase(language, 'done')}{shown}")
            continue
        key = {"failed": "failed_step", "skipped": "skipped"}.get(todo.status, "pending")
        why = _why(todo)
        if todo.status == "skipped" and (causes := _failed_causes(plan, todo)):
            many = "because_failed_many" if len(causes) > 1 else "because_failed"
            why = f" ({phrase(language, many, ids=', '.join(causes))})"
        lines.append(f"- {todo.title}: {phrase(language, key)}{why}")
    lines.extend(f"- {phrase(language, 'earlier_failure')}: {f}" for f in failures)
    return "\n".join(lines)


async def _fit_text(
    services: Services,
    asked: list[BaseMessage],
    what: str,
    again: str,
    todo_ids: Collection[str] | None = None,
) -> tuple[str, str | None, LLMOutputError | None]:
    """The executor model's text, asked once more, briefly, where it is not fit to show.

    A small model can run on to its token limit or repeat itself. Returns the last attempt's
    text, why it is not fit to show (None: it is, stripped) and, where it was cut off at the
    token limit, that error; what an unfit answer becomes is the caller's.
    """
    messages = asked
    for attempt in range(1, SUMMARY_ATTEMPTS + 1):
        cut = None
        try:
            text = await services.models.text(
                "executor", messages, what=what, stream=True, whole=True
            )
            why = unusable(text, todo_ids=todo_ids)
        except LLMOutputError as exc:  # cut off at the token limit
            cut, text, why = exc, exc.raw or "", exc.detail or str(exc)
        if why is None:
            return text.strip(), None, None
        if attempt < SUMMARY_ATTEMPTS:
            logger.warning("the LLM's text (%s) is not shown (%s); asking again", what, why)
            messages = [
                *asked,
                AIMessage(text),
                HumanMessage(again.format(why=why, words=AGAIN_WORDS)),
            ]
    return text, why, cut


async def _summary(state: PlannerState, services: Services, plan: Plan, listed: str) -> str:
    """The executor model's summary of the results, or `listed` where it gives none to show."""
    asked: list[BaseMessage] = [
        SystemMessage(SUMMARY_SYSTEM),
        HumanMessage(f"Request: {state['request']}\n\n{plan_text(plan)}\n\n{listed}"),
    ]
    try:
        text, why, _ = await _fit_text(
            services, asked, "summarise the results", AGAIN, todo_ids=plan.ids
        )
    except LLMError as exc:
        # The results stand without the summary; say why it is missing.
        logger.warning("summary by the LLM failed, answering with the results: %s", exc)
        return listed
    if why is None:
        return text
    logger.warning("the LLM's summary is not shown (%s); answering with the results", why)
    return listed


def _route_target(state: PlannerState) -> str | None:
    message = lamlog.last(_this_turn(state), Performative.ROUTE)
    return str(message["content"]["target"]) if message else None


async def _direct_answer(state: PlannerState, services: Services, language: str) -> str:
    """A request answered without a plan: small talk, a question, or nothing to do."""
    found = state.get("intent") or {}
    name = found.get("intent")
    spec = services.intents.intents.get(str(name)) if name else None
    if spec is None:
        return phrase(language, "nothing", abilities=_abilities(services, language))
    if found.get("reply"):
        return str(found["reply"])
    asked: list[BaseMessage] = [SystemMessage(ANSWER_SYSTEM), HumanMessage(state["request"])]
    try:
        text, why, cut = await _fit_text(services, asked, f"answer a {name} request", ANSWER_AGAIN)
    except LLMNotConfiguredError:
        if spec.name != "smalltalk":
            raise
        return phrase(language, "greeting", abilities=_abilities(services, language))
    if cut is not None:
        raise cut
    if why is not None:
        raise LLMOutputError(f"the executor model's answer is not fit to show: {why}")
    return text


async def _answer(state: PlannerState, services: Services) -> tuple[str, Status, dict[str, Any]]:
    """The answer's text, the conversation's status and its result."""
    language = (state.get("intent") or {}).get("language", "en")
    result = dict(state.get("result") or {})
    if state.get("status") == "failed":
        error = result.get("error", {})
        text = phrase(language, "failed", message=error.get("message", "unknown error"))
        return text, "failed", result
    if "refused" in result:
        return phrase(language, "refused", reason=result["refused"]), "done", result
    plan = state.get("plan")
    if plan is None:
        text = await _direct_answer(state, services, language)
        return text, "done", {"text": text}

    ok = all(t.status == "done" for t in plan.todos)
    outputs = {t.id: t.output for t in plan.todos if t.status == "done"}
    failures = [
        f"{m['content'].get('todo_id')}: {m['content']['error']['message']}"
        for m in _this_turn(state)
        if performative_of(m) is Performative.FAILURE
        and m["content"].get("todo_id")
        and plan.by_id().get(m["content"]["todo_id"]) is None
    ]
    text = _plan_summary(plan, failures, language)
    summarise = _route_target(state) == "planner" or services.settings.summarize_template_plans
    if summarise and services.models.available("executor"):
        text = await _summary(state, services, plan, text)
    return text, ("done" if ok else "failed"), {"text": text, "outputs": outputs}


def _this_turn(state: PlannerState) -> list[dict[str, Any]]:
    log = state.get("lam") or []
    start = max(i for i, m in enumerate(log) if performative_of(m) is Performative.REQUEST)
    return log[start:]


async def respond(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    failure: list[dict[str, Any]] = []
    try:
        text, status, result = await _answer(state, services)
    except LLMError as exc:
        failed = lamlog.fail(state, config, exc.code, str(exc))
        failure = failed["lam"]
        language = (state.get("intent") or {}).get("language", "en")
        text, status, result = phrase(language, "failed", message=exc), "failed", failed["result"]
    answer = _answered(state, config, text, status)
    return {**answer, "lam": [*failure, *answer["lam"]], "result": result}


def failed_answer(
    state: PlannerState, config: RunnableConfig, code: str, message: str
) -> dict[str, Any]:
    """The end of a turn that broke in `respond` itself: the `failure` and a fixed answer."""
    failed = lamlog.fail(state, config, code, message)
    language = (state.get("intent") or {}).get("language", "en")
    text = phrase(language, "failed", message=message)
    answer = _answered(state, config, text, "failed")
    return {**answer, "lam": [*failed["lam"], *answer["lam"]], "result": failed["result"]}


def _answered(
    state: PlannerState, config: RunnableConfig, text: str, status: Status
) -> dict[str, Any]:
    """The answer as the state update: one `inform` (topic `answer`) and the chat message."""
    cid = lamlog.conversation_id(state, config)
    request_id = lamlog.current_request(state)["id"]
    answer = lamlog.planner(state, config).inform(
        lamlog.requester(state),
        "answer",
        message_id=lamlog.stable_id(cid, "answer", request_id),
        in_reply_to=request_id,
        text=text,
        status=status,
    )
    return {"lam": [answer.to_dict()], "messages": [AIMessage(text)], "status": status}
