"""intent: the registry's rules decide first; the LLM only where the rules abstain."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from graph import lamlog
from graph.llm import LLMError
from graph.services import get_services
from graph.state import PlannerState
from lam import LAMMessage
from prompts.templates import CLASSIFY_SYSTEM

UNKNOWN = "unknown"


def _choice_schema(names: list[str]) -> type[BaseModel]:
    """A structured-output schema whose intent can only be a registry name or `unknown`."""
    allowed: Any = Literal[tuple([*names, UNKNOWN])]
    return create_model(
        "IntentChoice",
        intent=(allowed, Field(description="the intent's name")),
        confidence=(float, Field(ge=0.0, le=1.0, description="0 to 1")),
    )


async def intent(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    text = state["request"]
    factory = lamlog.planner(state, config)
    cid = lamlog.conversation_id(state, config)
    request_id = lamlog.current_request(state)["id"]

    decision = services.intents.classify(text)
    if decision.intent is not None:
        found: dict[str, Any] = {
            "intent": decision.intent,
            "confidence": decision.confidence,
            "source": "rules",
            "rule": decision.rule,
        }
    else:
        registry = services.intents
        listing = "\n".join(
            f"- {name}: {registry.intents[name].description}" for name in registry.names()
        )
        try:
            choice = await services.models.structured(
                "router",
                _choice_schema(registry.names()),
                [SystemMessage(CLASSIFY_SYSTEM.format(intents=listing)), HumanMessage(text)],
                what="classify a request the rules do not match",
            )
        except LLMError as exc:
            return lamlog.fail(state, config, exc.code, str(exc))
        data = choice.model_dump()
        found = {
            "intent": data["intent"],
            "confidence": float(data["confidence"]),
            "source": "llm",
            "rule": None,
        }

    inform: LAMMessage = lamlog.with_id(
        factory.inform_intent(
            lamlog.requester(state),
            found["intent"],
            found["confidence"],
            found["source"],
        ),
        lamlog.stable_id(cid, "intent", request_id),
    )
    return {"intent": found, "lam": [inform.to_dict()]}
