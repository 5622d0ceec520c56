"""route: what the request gets (`graph.front_door`), logged as a LAM `route` with its reason."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.front_door import choose_route
from graph.services import get_services
from graph.state import PlannerState
from lam import Performative

Next = Literal["template", "plan", "respond"]
# The route's target and the node that serves it.
_NODES: dict[str, Next] = {"template": "template", "planner": "plan", "answer": "respond"}


async def route(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    chosen = choose_route(state.get("intent") or {}, get_services(config).intents, state["request"])
    cid = lamlog.conversation_id(state, config)
    message = lamlog.planner(state, config).route(
        lamlog.PLANNER,
        chosen.target,
        chosen.reason,
        message_id=lamlog.stable_id(cid, "route", lamlog.current_request(state)["id"]),
    )
    return {"lam": [message.to_dict()]}


def after_route(state: PlannerState) -> Next:
    """The edge out of `route`: the node serving the target its `route` message named."""
    message = lamlog.last(state.get("lam") or [], Performative.ROUTE)
    return _NODES.get(str(message["content"]["target"]) if message else "", "respond")
