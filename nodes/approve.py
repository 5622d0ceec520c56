"""approve: where the policy or a ToDo asks for it, a person accepts or rejects the plan.

The `propose` message is the interrupt's question. Resume with the answering LAM message
(`agree` or `refuse`, `in_reply_to` the proposal), or, from Studio, with a shorthand:
`"agree"`, `true`, `{"performative": "refuse", "reason": "..."}`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from graph import lamlog
from graph.config import ApprovalPolicy
from graph.services import get_services
from graph.state import PlannerState
from lam import LAMMessage, LAMValidationError, MessageFactory, Performative, Plan

logger = logging.getLogger(__name__)


def needs_approval(plan: Plan, policy: ApprovalPolicy) -> bool:
    pending = [t for t in plan.todos if t.status == "pending"]
    if policy == "always":
        return bool(pending)
    if policy == "flagged":
        return any(t.requires_approval for t in pending)
    return False


def answer_to_message(answer: Any, propose: LAMMessage) -> LAMMessage:
    """The resume value as an `agree` or `refuse` answering the proposal."""
    if isinstance(answer, dict) and "lam_version" in answer:
        message = LAMMessage.from_dict(answer)
        if message.performative not in (Performative.AGREE, Performative.REFUSE):
            raise ValueError(
                f"a plan is answered with agree or refuse, not {message.performative.value}"
            )
        if message.in_reply_to != propose.id:
            raise ValueError(
                f"the answer replies to {message.in_reply_to}, not to the proposal {propose.id}"
            )
        return message
    kind: str
    reason = ""
    if isinstance(answer, bool):
        kind = "agree" if answer else "refuse"
    elif isinstance(answer, str):
        kind = answer.strip().lower()
    elif isinstance(answer, dict):
        kind = str(answer.get("performative") or answer.get("answer") or "").lower()
        reason = str(answer.get("reason") or answer.get("comment") or "")
    else:
        kind = ""
    sender = propose.receiver
    if kind in ("agree", "yes", "y", "approve", "ok"):
        return MessageFactory(sender, propose.conversation_id).agree(
            propose, comment=reason or None
        )
    if kind in ("refuse", "no", "n", "reject"):
        return MessageFactory(sender, propose.conversation_id).refuse(
            propose, reason or "refused by the user"
        )
    raise ValueError(f"cannot read {answer!r} as an answer: send agree or refuse")


async def approve(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    current = Plan.model_validate(state["plan"])
    if not needs_approval(current, services.settings.approval_policy):
        return {}
    proposed = lamlog.last(state.get("lam") or [], Performative.PROPOSE)
    if proposed is None:
        raise RuntimeError("a plan waits for approval, but no propose is in the log")
    propose = LAMMessage.from_dict(proposed)
    while True:
        answer = interrupt(propose.to_dict())
        try:
            reply = answer_to_message(answer, propose)
            break
        except (ValueError, LAMValidationError) as exc:
            # LangGraph keeps an interrupt's first answer for good, so a bad one would stick:
            # ask again instead (a new interrupt, the same `propose`).
            logger.warning("approval answer not understood, asking again: %s", exc)
    update: dict[str, Any] = {"lam": [reply.to_dict()]}
    if reply.performative == Performative.REFUSE:
        reason = str(reply.content.get("reason", ""))
        update["status"] = "done"
        update["result"] = {"refused": reason}
    return update


def after_approve(state: PlannerState) -> Literal["execute", "respond"]:
    last = (state.get("lam") or [{}])[-1]
    return "respond" if last.get("performative") == Performative.REFUSE.value else "execute"
