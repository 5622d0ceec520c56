"""route: answer directly (question, smalltalk, unknown) or hand the request to the planner."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.services import get_services
from graph.state import PlannerState
from lam import Performative

Target = Literal["plan", "respond"]


def _target(state: PlannerState, config: RunnableConfig) -> tuple[Target, str]:
    if state.get("status") == "failed":
        return "respond", "the request could not be classified"
    found = state.get("intent") or {}
    name = found.get("intent")
    spec = get_services(config).intents.intents.get(str(name))
    if spec is None:
        return "respond", f"intent {name!r} is not one the planner handles"
    if spec.kind == "answer":
        return "respond", f"{name} is answered directly, without a plan"
    return "plan", f"{name} needs a plan"


async def route(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    target, reason = _target(state, config)
    cid = lamlog.conversation_id(state, config)
    message = lamlog.with_id(
        lamlog.planner(state, config).route(lamlog.PLANNER, target, reason),
        lamlog.stable_id(cid, "route", lamlog.current_request(state)["id"]),
    )
    return {"lam": [message.to_dict()]}


def after_route(state: PlannerState) -> Target:
    """The edge out of `route`: the target its `route` message named."""
    message = lamlog.last(state.get("lam") or [], Performative.ROUTE)
    return "plan" if message and message["content"]["target"] == "plan" else "respond"
