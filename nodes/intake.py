"""intake: the person's request becomes the LAM `request` that opens this turn."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from graph import lamlog
from graph.state import PlannerState
from lam import LAMMessage, MessageFactory, Performative
from lam.log import performative_of


def _request_text(state: PlannerState) -> tuple[str, LAMMessage | None]:
    """Where this turn's request came from: a LAM `request`, a chat message, or text."""
    log = state.get("lam") or []
    if log and performative_of(log[-1]) is Performative.REQUEST:
        message = LAMMessage.from_dict(log[-1])
        return str(message.content["text"]), message
    chat = state.get("messages") or []
    if chat and isinstance(chat[-1], HumanMessage):
        return chat[-1].text, None
    return state.get("request") or "", None


async def intake(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    text, message = _request_text(state)
    if not text and message is None:
        raise ValueError(
            "no request: start the run with `request` text, a LAM `request` in `lam`, "
            "or a chat message in `messages`"
        )
    cid = lamlog.conversation_id(state, config)
    if message is None:
        message = MessageFactory("user", cid).request(
            text,
            receiver=lamlog.PLANNER,
            message_id=lamlog.stable_id(cid, "request", len(state.get("lam") or []), text),
        )
    update: dict[str, Any] = {
        "lam": [message.to_dict()],
        "request": text,
        "conversation_id": cid,
        "status": "running",
        # A new turn starts from nothing but the log.
        "intent": None,
        "plan": None,
        "plan_problems": [],
        "repairs": 0,
        "replans": 0,
        "result": None,
    }
    chat = state.get("messages") or []
    if not (chat and isinstance(chat[-1], HumanMessage) and chat[-1].text == text):
        update["messages"] = [HumanMessage(content=text)]
    return update
