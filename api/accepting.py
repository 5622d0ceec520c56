"""Accepting messages: a request opens a conversation, an answer is taken for a replica to apply.

Nothing runs here. What is accepted is recorded with the conversation, and a job queued for
whichever replica claims it (`graph.storage.records`, `api.runner`), in one script: a message
is accepted whole or not at all. A request is refused while its conversation runs or waits
(409), or while the tenant has too many running or waiting (429, `api.limits`). An answer is
accepted once per message it answers, whichever replica it reaches: the first is accepted,
any other is 409; the same answer again is accepted again.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError, not_found
from api.limits import TenantLimits
from api.principals import APPROVALS, Principal, Scope, forbidden, stamp
from api.settings import ServerSettings
from api.tenants import Tenants
from graph.conversations import (
    AnswerMismatchError,
    ConversationNotFoundError,
    Conversations,
    NothingWaitingError,
    NotTheReceiverError,
    WrongTodoError,
    thread_id,
)
from graph.storage.records import ConversationRecords
from graph.storage.server_keys import RedisKeys
from lam import LAMMessage

# Namespace of conversation ids derived from the id of the request that opened them.
_NEW_CONVERSATION = uuid.UUID("5d0b8a43-2f7e-4b8e-9a51-3c8f6f0e2d17")


def _already_answered(message_id: str) -> ApiError:
    return ApiError(409, "already_answered", f"message {message_id} has already been answered")


@dataclass(eq=False)  # a service, not a value: compared by identity
class Accepting:
    """Takes requests and answers for the conversations of one graph, per tenant."""

    conversations: Conversations
    tenants: Tenants
    records: ConversationRecords
    limits: TenantLimits
    redis: Any
    keys: RedisKeys
    config: ServerSettings

    async def open(self, tenant: str, request: LAMMessage) -> dict[str, Any]:
        """Open a conversation (or a new turn of a finished one) with a `request`.

        A request that names no conversation gets one derived from its own id, so a retry
        of it (after a crash, the response lost) lands in the same conversation. The
        claim queues the run in the same step (`graph.storage.records`).
        """
        cid = request.conversation_id or str(uuid.uuid5(_NEW_CONVERSATION, request.id))
        request = request.model_copy(update={"conversation_id": cid})
        # Serialised before anything is claimed: what cannot be stored claims nothing.
        request_json = request.to_json()
        request_json.encode("utf-8")
        thread = thread_id(cid, tenant)
        accepted = {"conversation_id": cid, "message_id": request.id}
        await self.limits.check_storage(tenant)
        opened = await self.records.open(
            tenant,
            thread,
            cid,
            request_json,
            request.id,
            max_running=self.config.max_running_per_tenant,
            max_waiting=self.config.max_waiting_per_tenant,
        )
        if opened.outcome == "busy":
            raise ApiError(
                409,
                "conversation_busy",
                f"conversation {cid} is {opened.status}; a new request can start once "
                "it is done or failed",
            )
        if opened.outcome == "limit_running":
            raise ApiError(
                429,
                "too_many_running",
                f"{self.config.max_running_per_tenant} of your conversations are running "
                "(CPA_MAX_RUNNING_PER_TENANT); retry when one has finished",
                headers={"Retry-After": str(self.config.retry_after_s)},
            )
        if opened.outcome == "limit_waiting":
            raise ApiError(
                429,
                "too_many_waiting",
                f"{self.config.max_waiting_per_tenant} of your conversations wait for an "
                "answer (CPA_MAX_WAITING_PER_TENANT); answer or let one expire first",
                headers={"Retry-After": str(await self._waiting_retry_after(tenant))},
            )
        # new, turn, or retry (the same request again, e.g. after a crash)
        return accepted

    async def _waiting_retry_after(self, tenant: str) -> int:
        oldest = await self.records.oldest_wait(tenant)
        if oldest is None:
            return self.config.retry_after_s
        return max(1, math.ceil(oldest + self.config.wait_expiry_s - time.time()))

    async def answer(
        self, tenant: str, message: LAMMessage, principal: Principal | None = None
    ) -> dict[str, Any]:
        """Accept an answer to a waiting `propose` or `assign`; a replica applies it.

        Once per answered message, whichever replica the answers reach: the first is
        accepted, any other is 409 (`graph.storage.records`); the same answer again is
        accepted again.
        `principal` (who sent it, `api.principals`): an `agree`/`refuse` to a `propose` sent
        to someone else needs its `approve` scope, one to its own its `answer` scope.
        """
        cid = str(message.conversation_id)
        thread = await self.tenants.check_owner(tenant, cid)
        accepted = {"conversation_id": cid, "message_id": message.id}
        if message.in_reply_to is None:
            raise ApiError(
                422,
                "invalid_message",
                f"a {message.performative.value} sent to the planner answers a waiting "
                "message: in_reply_to must be its id",
                [{"field": "in_reply_to", "message": "required here"}],
            )
        answered = str(message.in_reply_to)
        if principal is not None and message.performative in APPROVALS:
            message = await self._approval(tenant, cid, message, principal)
        taken = await self.redis.hget(self.keys.answered(thread), answered)
        if taken is not None:
            if taken.decode() == message.id:
                return accepted  # this very answer again (e.g. after a crash)
            raise _already_answered(answered)
        try:
            await self.conversations.answer(cid, message, owner=tenant)
        except (NothingWaitingError, ConversationNotFoundError):
            # Answered meanwhile (another replica's answer accepted and already applied):
            # the answered message says so, as the check above would have.
            taken = await self.redis.hget(self.keys.answered(thread), answered)
            if taken is not None:
                if taken.decode() == message.id:
                    return accepted
                raise _already_answered(answered) from None
            raise ApiError(
                409,
                "nothing_waiting",
                f"nothing in conversation {cid} waits for an answer to {message.in_reply_to}",
            ) from None
        except AnswerMismatchError as exc:
            raise ApiError(
                422, "wrong_answer", str(exc), [{"field": "performative", "message": str(exc)}]
            ) from None
        except NotTheReceiverError as exc:
            raise ApiError(
                403, "not_the_receiver", str(exc), [{"field": "sender", "message": str(exc)}]
            ) from None
        except WrongTodoError as exc:
            raise ApiError(
                409, "wrong_todo", str(exc), [{"field": "content.todo_id", "message": str(exc)}]
            ) from None
        outcome = await self.records.accept(tenant, thread, answered, message.id, message.to_json())
        if outcome == "taken":  # another replica accepted an answer to it just now
            raise _already_answered(answered)
        if outcome == "gone":
            raise not_found(cid)
        return accepted

    async def _approval(
        self, tenant: str, cid: str, message: LAMMessage, principal: Principal
    ) -> LAMMessage:
        """An `agree`/`refuse` as it may be taken from `principal` (403 if it may not)."""
        try:
            view = await self.conversations.view(cid, owner=tenant)
        except ConversationNotFoundError:
            return message  # nothing waits: `answer` says so
        question = next(
            (w.message for w in view.waiting if w.message["id"] == message.in_reply_to), None
        )
        if question is None:
            return message
        receiver = str(question["receiver"])
        if message.sender != receiver:
            if principal.id is not None and principal.may(Scope.APPROVE):
                # An approver of the tenant answers for the person the plan was proposed to.
                return stamp(message, principal, approved_for=receiver)
            return message  # not the receiver: `answer` refuses it (403 not_the_receiver)
        if principal.may(Scope.ANSWER) or principal.may(Scope.APPROVE):
            return message
        raise forbidden(
            f"this credential ({principal.name}) may not answer {question['id']} "
            "(scope answer or approve)",
            "sender",
        )
