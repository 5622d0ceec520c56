"""intent: the tiers without an LLM decide first (rules, compound detection, the local
classifier); the router model only where none of them did.

The router model's choice is logged like any other (`inform`, topic `intent`, source `llm`),
but it only ever hints: `graph.front_door` never turns it into a template plan.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from graph import lamlog
from graph.front_door import NOTHING_TO_DO, OTHER_TASK
from graph.intents import Decision, IntentRegistry
from graph.llm import LLMError, LLMNotConfiguredError
from graph.services import Services, get_services
from graph.state import IntentFound, Language, PlannerState
from prompts.templates import CLASSIFY_SYSTEM

#: Below this, the router model's choice counts as no decision (the planner then plans).
ROUTER_CONFIDENCE_FLOOR = 0.5


def _choice_schema(names: list[str]) -> type[BaseModel]:
    """Structured output whose intent can only be a registry name or one of the two others."""
    allowed: Any = Literal[tuple([*names, OTHER_TASK, NOTHING_TO_DO])]
    return create_model(
        "IntentChoice",
        intent=(allowed, Field(description="an intent's name, other_task or nothing_to_do")),
        confidence=(float, Field(description="how sure, from 0 to 1")),
    )


def _language(decision: Decision, locale: object) -> Language:
    """The request's language: its `locale` when the sender gave one, else detected."""
    if isinstance(locale, str) and locale[:2].lower() in ("en", "de"):
        return "de" if locale[:2].lower() == "de" else "en"
    return decision.language


def found_without_llm(registry: IntentRegistry, text: str, locale: object = None) -> IntentFound:
    """What the tiers without an LLM find in a request (rules, compound detection with the
    request's actions as `compound.parts`, the classifier): the `intent` step's first
    finding, and all a caller without the graph needs to plan as the graph would
    (`nodes.plan.draft_plan`'s `found`; `benchmarks.taskbench`)."""
    decision = registry.decide(text)
    found: IntentFound = {
        "intent": decision.intent,
        "confidence": decision.confidence,
        "source": decision.tier,
        "rule": decision.rule,
        "read_only": decision.read_only,
        "language": _language(decision, locale),
        "hints": list(decision.hints),
        "compound": None,
        "reply": registry.reply_for(decision),
    }
    if decision.compound is not None:
        found["source"] = "compound"
        found["compound"] = {
            "reason": decision.compound.reason,
            "parts": list(decision.compound.parts),
            "follows": list(decision.compound.follows),
        }
    return found


async def _ask_router(services: Services, text: str, found: IntentFound) -> IntentFound:
    registry = services.intents
    listing = "\n".join(
        f"- {name}: {registry.intents[name].description}" for name in registry.names()
    )
    try:
        choice = await services.models.structured(
            "router",
            _choice_schema(registry.names()),
            [SystemMessage(CLASSIFY_SYSTEM.format(intents=listing)), HumanMessage(text)],
            what="classify a request nothing else decided",
        )
    except LLMNotConfiguredError:
        raise
    except LLMError as exc:
        # The planner can still plan the request: a router that fails is no reason to stop.
        return {**found, "router_error": str(exc)}
    data = choice.model_dump()
    confidence = min(max(float(data["confidence"]), 0.0), 1.0)
    name = str(data["intent"])
    if confidence < ROUTER_CONFIDENCE_FLOOR:
        return {**found, "choice": OTHER_TASK, "confidence": confidence}
    if name in (OTHER_TASK, NOTHING_TO_DO):
        return {**found, "choice": name, "confidence": confidence}
    return {**found, "intent": name, "confidence": confidence, "source": "llm"}


async def intent(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    text = state["request"]
    request = lamlog.current_request(state)
    found = found_without_llm(services.intents, text, request["content"].get("locale"))
    undecided = found["intent"] is None and found["source"] != "compound"
    if undecided and text.strip() and services.models.available("router"):
        found = await _ask_router(services, text, found)

    update: dict[str, Any] = {"intent": found}
    name = found.get("intent")
    if name is not None:
        inform = lamlog.planner(state, config).inform_intent(
            lamlog.requester(state),
            name,
            found["confidence"],
            str(found["source"]),
            message_id=lamlog.stable_id(
                lamlog.conversation_id(state, config), "intent", request["id"]
            ),
        )
        update["lam"] = [inform.to_dict()]
    return update
