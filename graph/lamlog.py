"""Reading and writing the conversation's LAM log from inside nodes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.state import LamDict, PlannerState
from lam import MessageFactory, Performative
from lam.log import performative_of

PLANNER = "planner"
# Fixed namespace: message ids derived from (conversation, purpose) are the same on every
# re-run of a node, which keeps the log idempotent across resumes.
_ID_NAMESPACE = uuid.UUID("0b6f1c52-5c1e-4a57-9d55-6a1f3c0f7e21")


def conversation_id(state: PlannerState, config: RunnableConfig) -> str:
    """The conversation's public id, which its LAM messages carry.

    `configurable["conversation_id"]` where the thread id is not the public id (the
    server's `<tenant>/<id>` threads, `graph.conversations.thread_id`), else the thread id.
    """
    configurable = config.get("configurable") or {}
    cid = (
        configurable.get("conversation_id")
        or configurable.get("thread_id")
        or state.get("conversation_id")
    )
    if not cid:
        raise ValueError("no conversation id: run the graph with a thread_id")
    return str(cid)


def stable_id(conversation: str, *parts: object) -> str:
    """A message id that is the same whenever the same step produces the same message."""
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join([conversation, *map(str, parts)])))


def planner(state: PlannerState, config: RunnableConfig) -> MessageFactory:
    return MessageFactory(PLANNER, conversation_id(state, config))


def last(log: Iterable[LamDict], performative: Performative, **content: Any) -> LamDict | None:
    """The newest message of a kind whose content has the given values."""
    for message in reversed(list(log)):
        if performative_of(message) is not performative:
            continue
        if all(message["content"].get(k) == v for k, v in content.items()):
            return message
    return None


def current_request(state: PlannerState) -> LamDict:
    """The `request` this turn answers (the newest one in the log)."""
    request = last(state.get("lam") or [], Performative.REQUEST)
    if request is None:
        raise ValueError("the conversation has no request")
    return request


def requester(state: PlannerState) -> str:
    """Who asked: replies go back to them."""
    return str(current_request(state)["sender"])


def fail(
    state: PlannerState,
    config: RunnableConfig,
    code: str,
    message: str,
    *,
    in_reply_to: str | None = None,
) -> dict[str, Any]:
    """The state update that ends this turn with a `failure` to the requester."""
    cid = conversation_id(state, config)
    failure = planner(state, config).failure(
        requester(state),
        code,
        message,
        in_reply_to=in_reply_to,
        message_id=stable_id(cid, "failure", current_request(state)["id"], code),
    )
    return {
        "status": "failed",
        "result": {"error": {"code": code, "message": message}},
        "lam": [failure.to_dict()],
    }
