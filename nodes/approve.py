"""approve: where the policy or what a step does asks for it, the person accepts or rejects.

What needs approval is decided here again, whoever wrote the plan: every pending step's
effect is re-derived from its tool in the catalogue as it is now, its executor, and what a
trusted template declared for this very proposal (`graph.approval`), so a plan that
reached this node without a flag it should carry still asks. The model's
`requires_approval` can add approvals, never remove them.

The `propose` message is the interrupt's question. Only its receiver (the person who asked)
may answer it: resume with the answering LAM message (`agree` or `refuse`, `in_reply_to`
the proposal, `sender` the proposal's receiver), or, from Studio, with a shorthand:
`"agree"`, `true`, `{"performative": "refuse", "reason": "..."}` (taken as the receiver's).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from graph import lamlog
from graph.answer_rules import AnswerMismatchError, NotTheReceiverError, check_answer
from graph.approval import declared_for, mark_approvals
from graph.config import ApprovalPolicy
from graph.plan_proposal import current_plan
from graph.services import get_services
from graph.state import PlannerState
from graph.tools.sources import tenant_of
from lam import LAMMessage, LAMValidationError, MessageFactory, Performative, Plan
from lam.log import performative_of

logger = logging.getLogger(__name__)
#: A refused plan's ToDos' error (the answer says why in the request's language).
REFUSED = "plan refused"


class UnreadableApprovalError(ValueError):
    """The resume value is no answer to this `propose` (or not from its receiver): ask again."""


def needs_approval(plan: Plan, policy: ApprovalPolicy) -> bool:
    """Whether the plan, with its flags as they are, needs the person's `agree`."""
    pending = [t for t in plan.todos if t.status == "pending"]
    if policy == "always":
        return bool(pending)
    if policy == "flagged":
        return any(t.requires_approval for t in pending)
    return False


def answer_to_message(answer: Any, propose: LAMMessage) -> LAMMessage:
    """The resume value as an `agree` or `refuse` from the proposal's receiver.

    Raises UnreadableApprovalError for anything else, including a LAM answer sent by
    someone the proposal was not sent to.
    """
    if isinstance(answer, dict) and "lam_version" in answer:
        try:
            message = LAMMessage.from_dict(answer)
        except LAMValidationError as exc:
            raise UnreadableApprovalError(f"not a valid LAM message: {exc}") from None
        if message.in_reply_to != propose.id:
            raise UnreadableApprovalError(
                f"the answer replies to {message.in_reply_to}, not to the proposal {propose.id}"
            )
        try:
            # agree or refuse, from the one the proposal was sent to: the same rules as the
            # HTTP API's, so a resume from Studio cannot approve as someone else.
            check_answer(propose.to_dict(), message)
        except (AnswerMismatchError, NotTheReceiverError) as exc:
            raise UnreadableApprovalError(str(exc)) from None
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
    raise UnreadableApprovalError(f"cannot read {answer!r} as an answer: send agree or refuse")


async def approve(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    proposed = lamlog.last(state.get("lam") or [], Performative.PROPOSE)
    propose = LAMMessage.from_dict(proposed) if proposed is not None else None
    declared = declared_for(state.get("plan_effects"), propose.id) if propose else {}
    current = current_plan(state)
    catalogue = await services.tools.catalogue(tenant_of(config))
    checked = mark_approvals(current, services.executors, declared, catalogue)
    update: dict[str, Any] = {}
    if checked != current:
        logger.warning("the plan lacked approval flags its steps need; added them")
        update["plan"] = checked
    if not needs_approval(checked, services.settings.approval_policy):
        return update
    if propose is None:
        raise RuntimeError("a plan waits for approval, but no propose is in the log")
    while True:
        answer = interrupt(propose.to_dict())
        try:
            reply = answer_to_message(answer, propose)
            break
        except UnreadableApprovalError as exc:
            # LangGraph keeps an interrupt's first answer for good, so a bad one would stick:
            # ask again instead (a new interrupt, the same `propose`).
            logger.warning("approval answer not taken, asking again: %s", exc)
    update["lam"] = [reply.to_dict()]
    if reply.performative == Performative.REFUSE:
        reason = str(reply.content.get("reason", ""))
        update["status"] = "done"
        update["result"] = {"refused": reason}
        update["plan"] = refused(checked)
    return update


def refused(plan: Plan) -> Plan:
    """The plan with its pending ToDos skipped: nothing will run them (not "pending")."""
    todos = [
        t.model_copy(update={"status": "skipped", "error": REFUSED}) if t.status == "pending" else t
        for t in plan.todos
    ]
    return plan.model_copy(update={"todos": todos})


def after_approve(state: PlannerState) -> Literal["execute", "respond"]:
    log = state.get("lam") or []
    refused = bool(log) and performative_of(log[-1]) is Performative.REFUSE
    return "respond" if refused else "execute"
