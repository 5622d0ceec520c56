"""Conversations of one graph, served to tenants: accept messages, run, look, expire.

A tenant's conversation `C` runs in the LangGraph thread `T/C` (`graph.conversations`), so
two tenants can use the same id, and one tenant learns nothing about another's ids. The
server's record of it (`graph.storage.records`) says its status; every key of a finished one gets
the TTL. Any number of server processes (replicas) may share one Redis and key prefix:
each piece of work (a request to open, an accepted answer) is recorded in Redis with a job
on a stream, and whichever replica claims the conversation's lease runs it
(`api.runner`, `graph.storage.leases`), one run at a time per conversation; a replica that dies
leaves its jobs and lease to time out, and another carries the conversation on from its
last checkpoint (`Hub.run_claim`). An answer is accepted once per message it answers,
whichever replica it reaches (`graph.storage.records`). A conversation waiting longer than
`CPA_WAIT_EXPIRY_S` ends failed with code `expired` (`Hub.expire_waiting`, run
periodically by every replica, each under the conversation's lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
import uuid
from typing import Any, cast

from langgraph.types import Command

from api.errors import ApiError, not_found
from api.events import Feeds
from api.idempotency import DEFAULT_RECORD_TTL_S, ResponseRecords
from api.keystore import KeyStore
from api.limits import TenantLimits, measure
from api.models import FINAL_STATUSES
from api.principals import APPROVALS, Principal, Scope, forbidden, stamp
from api.runner import Runner
from api.settings import ServerSettings, replica_name
from graph.conversations import (
    AnswerMismatchError,
    ConversationNotFoundError,
    Conversations,
    NothingWaitingError,
    NotTheReceiverError,
    WrongTodoError,
    thread_id,
)
from graph.services import Services
from graph.storage.client import cancel_and_wait
from graph.storage.errors import REDIS_DOWN
from graph.storage.event_log import EventLog
from graph.storage.fencing import FENCE, FencedError
from graph.storage.leases import Claim, LeaseLostError, Leases
from graph.storage.records import ConversationRecords
from graph.storage.server_keys import RedisKeys
from lam import LAM_VERSION, LAMMessage, MessageFactory

logger = logging.getLogger("cpa_planner.server")
PLANNER = "planner"
EXPIRED = "expired"
FORGET_THREADS_S = 600.0  # how often the ids of expired conversations are dropped
REMOTE_PREFIX = "a2a:"  # receivers of assigns to A2A agents (`nodes/executors/a2a.py`)
_NOTHING: Any = object()  # no run to do, only to record where the conversation stands
# Namespace of conversation ids derived from the id of the request that opened them.
_NEW_CONVERSATION = uuid.UUID("5d0b8a43-2f7e-4b8e-9a51-3c8f6f0e2d17")


def split_thread(thread: str) -> tuple[str, str]:
    """(tenant, conversation id) of a server thread `T/C`."""
    tenant, _, cid = thread.partition("/")
    return tenant, cid


def _already_answered(message_id: str) -> ApiError:
    return ApiError(409, "already_answered", f"message {message_id} has already been answered")


class Hub:
    """Conversations of one graph, run by whichever replica claims them, per tenant."""

    def __init__(
        self,
        conversations: Conversations,
        saver: Any,
        services: Services,
        config: ServerSettings,
        *,
        archive: bool = False,
    ) -> None:
        """`archive`: what the conversations' logs gain, and where their runs stop, is
        also handed to the history's archivers (`api.archiver`)."""
        self.conversations = conversations
        self.saver = saver
        self.redis = saver.client
        self.services = services
        self.config = config
        self.keys = RedisKeys(saver.prefix)
        ttl = services.settings.redis_ttl_s
        self.records = ConversationRecords(self.redis, self.keys, ttl, archive=archive)
        self.responses = ResponseRecords(self.redis, self.keys, ttl or DEFAULT_RECORD_TTL_S)
        self.events = EventLog(self.redis, self.keys, saver.call_script, archive=archive)
        self.feeds = Feeds(self.events, config.sse_refresh_s)
        self.leases = Leases(self.redis, self.keys, replica_name(), config.lease_s)
        self.keystore = KeyStore(self.redis, saver.prefix)
        self.limits = TenantLimits(
            self.redis,
            self.keys,
            rate_per_min=config.rate_limit_per_min,
            max_stored_bytes=config.max_stored_bytes_per_tenant,
            retry_after_s=config.retry_after_s,
        )
        self.runner = Runner(
            self.redis, self.keys, self.leases, self.run_claim, max_runs=config.runs_per_replica
        )
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe for the SSE feeds, take jobs (and over), start expiring waits."""
        await self.feeds.start()
        await self.runner.start()
        self._sweeper = asyncio.create_task(self._sweep_waits(), name="expire-waits")

    async def stop_taking_work(self) -> None:
        """This process begins to shut down: read no more jobs, so that what another
        replica hands back meanwhile goes to one that stays, and answer the requests that
        wait for a run (`?wait=`) now; runs under way go on until `close` hands them back."""
        self.feeds.end_waits()
        await self.runner.stop_reading()

    async def close(self) -> None:
        """Stop; the conversations this replica runs are handed to the others (or the next
        start)."""
        if self._sweeper is not None:
            await cancel_and_wait(self._sweeper)
        await self.runner.close()
        await self.feeds.close()

    # Tenants ----------------------------------------------------------------------------

    async def check_owner(self, tenant: str, cid: str) -> str:
        """The conversation's thread, if the tenant has it (404 otherwise: no oracle)."""
        thread = thread_id(cid, tenant)
        if not await self.redis.exists(self.keys.conversation(thread)):
            raise not_found(cid)
        return thread

    async def list_conversations(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.redis.zrevrange(self.keys.tenant(tenant), 0, limit - 1, withscores=True)
        ids = [r[0].decode() for r in rows]
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.exists(self.keys.conversation(thread_id(cid, tenant)))
        alive = await pipe.execute() if ids else []
        gone = [cid for cid, ok in zip(ids, alive, strict=True) if not ok]
        if gone:  # expired with their conversation: drop them from the index
            await self.redis.zrem(self.keys.tenant(tenant), *gone)
        return [
            {"conversation_id": cid, "created": score}
            for cid, (_, score), ok in zip(ids, rows, alive, strict=True)
            if ok
        ]

    # Accepting messages ---------------------------------------------------------------

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
        thread = await self.check_owner(tenant, cid)
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

    async def wait_idle(self, thread: str, seconds: float) -> None:
        """Until the conversation stops running (on whichever replica), or `seconds`."""
        await self.feeds.until_settled(thread, seconds)

    # Running --------------------------------------------------------------------------

    async def run_claim(self, claim: Claim) -> None:
        """Do what the conversation's lease was taken for, then record where it stopped.

        The work is found in Redis: a request to open, accepted answers, or a run a
        previous holder left unfinished (it died, or lost its lease): that one is carried
        on from its last checkpoint, which repeats no finished ToDo (their results are
        saved as pending writes) and sends no `assign` twice (the same stable id: the event
        log and the inbox keep one copy). Every write carries the lease's generation.

        While Redis is away, waits for it and carries on from the checkpoint.
        """
        thread = claim.thread
        unfinished = claim.unfinished
        while True:
            try:
                opened, applied, payload = await self._work_of(claim, unfinished)
                if payload is not _NOTHING:
                    await self._run(thread, payload, claim.generation)
                break
            except REDIS_DOWN as exc:
                logger.warning("conversation %s: Redis went away (%s); waiting for it", thread, exc)
                await self._wait_for_redis()
                unfinished = True  # whatever ran is in the checkpoint: continue from there
        await self.finish(thread, claim.generation, opened=opened, applied=applied)

    async def _work_of(self, claim: Claim, unfinished: bool) -> tuple[str, list[str], Any]:
        """(request id opened, answer ids applied, the run's input or _NOTHING)."""
        thread = claim.thread
        tenant, cid = split_thread(thread)
        if claim.open:
            record = await self.records.record(thread)
            if record.get("request_id") != claim.open or "request" not in record:
                return "", [], _NOTHING  # replaced meanwhile: nothing of ours to open
            request = LAMMessage.from_json(record["request"], max_bytes=None)
            if unfinished and await self._has_message(tenant, cid, request.id):
                return claim.open, [], None  # a previous holder began this turn: carry on
            return claim.open, [], Conversations.opening(request)
        if claim.answers:
            pending = await self.records.pending_answers(thread)
            answers = sorted(
                (LAMMessage.from_json(p, max_bytes=None) for p in pending),
                key=lambda m: m.timestamp,
            )
            applied = [a.id for a in answers]
            resume: dict[str, Any] = {}
            for answer in answers:
                try:
                    command = await self.conversations.answer(cid, answer, owner=tenant)
                except (
                    NothingWaitingError,
                    AnswerMismatchError,
                    ConversationNotFoundError,
                    NotTheReceiverError,
                    WrongTodoError,
                ) as e:
                    # Applied before (the run then stopped before recording it): once only.
                    logger.info("conversation %s: answer %s dropped: %s", cid, answer.id, e)
                    continue
                resume.update(cast(dict[str, Any], command.resume))
            if resume:
                return "", applied, Command(resume=resume)
            # Every answer was applied before. If the run then stopped mid-step, carry it on.
            return "", applied, None if await self._still_running(tenant, cid) else _NOTHING
        if unfinished and await self._still_running(tenant, cid):
            return "", [], None  # taken over mid-run: carry on from the checkpoint
        return "", [], _NOTHING

    async def _still_running(self, tenant: str, cid: str) -> bool:
        try:
            return (await self.conversations.view(cid, owner=tenant)).status == "running"
        except ConversationNotFoundError:
            return False

    async def _has_message(self, tenant: str, cid: str, message_id: str) -> bool:
        try:
            view = await self.conversations.view(cid, owner=tenant)
        except ConversationNotFoundError:
            return False
        return any(m["id"] == message_id for m in view.messages)

    async def _run(self, thread: str, payload: Any, generation: str) -> None:
        tenant, cid = split_thread(thread)
        fence = {FENCE: generation}
        # Every message as it appears: listeners anywhere are told (`api.events`).
        log = self.events.appender(thread, generation)
        try:
            await self.redis.hdel(self.keys.conversation(thread), "error")
            progress = functools.partial(self.events.publish_progress, thread)
            # "sync": a run that lost its lease is refused at the end of its step, before
            # it starts another ToDo. `finish` gives a finished conversation its TTL.
            async for message in self.conversations.stream(
                cid,
                payload,
                progress,
                owner=tenant,
                configurable=fence,
                durability="sync",
                expire=False,
            ):
                log.add(message)
            await log.flush()
        except (asyncio.CancelledError, FencedError):
            raise  # lost the lease: the successor carries on; nothing more is written
        except REDIS_DOWN:
            raise  # not the conversation's fault: `run_claim` waits, carries on
        except Exception as exc:
            # The graph raised (a bug, or a setting a run cannot use): it fails visibly.
            logger.exception("conversation %s: the run raised", cid)
            error = {"code": "run_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
            with contextlib.suppress(Exception):
                await self.redis.hset(self.keys.conversation(thread), "error", json.dumps(error))
        finally:
            await log.close()

    async def _wait_for_redis(self) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            try:
                await self.redis.ping()
                return
            except REDIS_DOWN:
                delay = min(delay * 2, 5.0)

    async def _redis_retried(self, call: Any) -> Any:
        while True:
            try:
                return await call()
            except REDIS_DOWN as exc:
                logger.warning("Redis went away (%s); waiting for it", exc)
                await self._wait_for_redis()

    async def finish(
        self, thread: str, generation: str, *, opened: str = "", applied: list[str] | None = None
    ) -> None:
        """After a run stopped: record where it stopped; a finished one gets its TTL.

        Reads the conversation from its checkpoint, appends what the event log lacks, then
        records the status (`waiting`, `done` or `failed`; `running` if more work arrived
        meanwhile) and clears the work done, under the lease's generation. A finished
        conversation's keys get the TTL.
        """
        tenant, cid = split_thread(thread)

        async def record() -> None:
            view = await self._stopped_view(tenant, cid)
            await self.events.append(thread, view["messages"], generation)
            status = view["status"]
            if status == "running":
                # Stopped mid-turn, yet nothing raised: say so rather than leave a ghost.
                logger.error("conversation %s: the run stopped before the turn ended", cid)
                error = {"code": "run_stopped", "message": "the run stopped before the turn ended"}
                await self.redis.hset(self.keys.conversation(thread), "error", json.dumps(error))
                status = "failed"
            if status in FINAL_STATUSES:
                await self.conversations.expire(thread)
            await self._record_size(tenant, thread, final=status in FINAL_STATUSES)
            await self._note_remote_wait(thread, status, view["messages"])
            await self.records.finish(
                tenant,
                thread,
                status,
                generation,
                opened=opened,
                applied=applied,
                # Kept for readers (a waiting POST, GET) until the next run: not rebuilt.
                view=json.dumps(view) if status == view["status"] else None,
                stop=json.dumps({"plan": view.get("plan"), "result": view.get("result")}),
            )

        await self._redis_retried(record)

    async def _note_remote_wait(self, thread: str, status: str, messages: list[Any]) -> None:
        """Index the conversation while it waits for an A2A agent's task (the remote-task
        watcher reads only those, `api.a2a.remote_tasks`)."""
        answered = {m.get("in_reply_to") for m in messages}
        remote = any(
            m.get("performative") == "assign"
            and str(m.get("receiver", "")).startswith(REMOTE_PREFIX)
            and m.get("id") not in answered
            for m in messages
        )
        if status == "waiting" and remote:
            await self.redis.zadd(self.keys.remote_waiting, {thread: time.time()}, nx=True)
        else:
            await self.redis.zrem(self.keys.remote_waiting, thread)

    async def _record_size(self, tenant: str, thread: str, *, final: bool) -> None:
        """Measure what the conversation keeps in Redis, for its tenant's quota."""
        if self.limits.max_stored_bytes is None:
            return
        # The model news too while it is there (it expires on its own, within the hour).
        keys = [
            *await self.saver.athread_keys(thread),
            *self.keys.expiring(thread),
            self.keys.model_news(thread),
        ]
        ttl = self.services.settings.redis_ttl_s
        expires = time.time() + ttl if final and ttl else None
        await self.limits.record_size(tenant, thread, await measure(self.redis, keys), expires)

    async def _stopped_view(self, tenant: str, cid: str) -> dict[str, Any]:
        try:
            return await self.view(tenant, cid, settled=True)
        except ConversationNotFoundError:
            # The run raised before its first checkpoint: it failed.
            return {"status": "failed", "messages": []}

    # Expiry -----------------------------------------------------------------------------

    async def expire_waiting(self) -> list[str]:
        """End every conversation that has waited longer than CPA_WAIT_EXPIRY_S as failed.

        Each gets a `failure` with code `expired` in its log; nothing waits in its inbox any
        more; it is kept for the TTL like any finished conversation. Each is ended under
        its lease (any replica may do it; a conversation being answered is left alone).
        Returns the threads.
        """
        expiry = self.config.wait_expiry_s
        expired = []
        for thread in await self.records.waited_too_long(time.time() - expiry):
            message = (
                f"no answer within {expiry:g} s (CPA_WAIT_EXPIRY_S): the conversation has ended"
            )
            if await self.end_waiting(thread, EXPIRED, message, waited_since=expiry):
                expired.append(thread)
        if expired:
            logger.info("expired %d conversation(s) that waited too long", len(expired))
        return expired

    async def end_waiting(
        self, thread: str, code: str, message: str, *, waited_since: float | None = None
    ) -> bool:
        """End a waiting conversation as failed with `code` (expired, cancelled), under its
        lease; False if it does not wait any more (answered meanwhile, or a runner has it).

        `waited_since`: only if it has waited at least that many seconds.
        """
        acquired = await self.leases.acquire(thread, force=True)
        if acquired.claim is None:
            return False  # a runner has it: answered meanwhile
        claim = acquired.claim
        try:
            since = await self.redis.zscore(self.keys.waiting, thread)
            if since is None or claim.answers or claim.open:
                return False  # answered meanwhile
            if waited_since is not None and since > time.time() - waited_since:
                return False  # waiting, but not that long
            tenant, cid = split_thread(thread)
            try:
                await self.conversations.abandon(
                    cid, code, message, owner=tenant, configurable={FENCE: claim.generation}
                )
            except (NothingWaitingError, ConversationNotFoundError):
                await self.finish(thread, claim.generation)  # records what it is instead
                return False
            await self.finish(thread, claim.generation)
            return True
        finally:
            with contextlib.suppress(LeaseLostError):
                await self.leases.release(claim, "drop")

    async def _sweep_waits(self) -> None:
        interval = min(max(self.config.wait_expiry_s / 4, 0.2), 60.0)
        forgotten_at = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_waiting()
                if time.monotonic() - forgotten_at >= FORGET_THREADS_S:
                    # Conversations gone with their TTL leave their id in the checkpointer's
                    # thread registry (it is not a key of theirs): drop those ids.
                    forgotten_at = time.monotonic()
                    await self.saver.aforget_gone_threads()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("expiring waiting conversations failed; trying again later")

    # Looking ----------------------------------------------------------------------------

    async def view(self, tenant: str, cid: str, *, settled: bool = False) -> dict[str, Any]:
        """The conversation body of docs/http.md, with what only the server knows about runs.

        The status is `running` while the record says so (work queued or under way on any
        replica), unless `settled` (where the run stopped, for `finish`).
        """
        thread = thread_id(cid, tenant)
        status, raw_error, stopped_at = await self.redis.hmget(
            self.keys.conversation(thread), ["status", "error", "view"]
        )
        if not settled and stopped_at is not None and status != b"running":
            return cast(dict[str, Any], json.loads(stopped_at))  # as `finish` recorded it
        try:
            body = (await self.conversations.view(cid, owner=tenant)).to_dict()
        except ConversationNotFoundError:
            record = await self.records.record(thread)
            if "request" not in record:
                raise
            # Accepted, but the run has not written its first checkpoint (or never will).
            body = {
                "conversation_id": cid,
                "status": "running",
                "intent": None,
                "plan": None,
                "result": None,
                "messages": [json.loads(record["request"])],
            }
            if record.get("status") == "failed":
                body["status"] = "failed"
        if not settled and status == b"running":
            body["status"] = "running"
        elif body["status"] in ("running", "failed") and raw_error is not None:
            # A run that raised: its error is the result (a graph's own failure has none).
            body["status"] = "failed"
            body["result"] = {"error": json.loads(raw_error)}
        return body

    async def inbox(self, tenant: str, cid: str, receiver: str | None) -> list[dict[str, Any]]:
        # Read the answered ids first: an answer applied while the view is read must
        # still hide the message it answered, which that (older) view may list.
        answered = await self.records.answered(thread_id(cid, tenant))
        waiting = await self.conversations.inbox(cid, receiver, owner=tenant)
        return [m for m in waiting if m["id"] not in answered]

    async def sync_events(self, tenant: str, cid: str) -> None:
        """Append the view's messages not yet in the event log."""
        with contextlib.suppress(ConversationNotFoundError):
            view = await self.view(tenant, cid)
            await self.events.append(thread_id(cid, tenant), view["messages"])

    async def start_position(self, tenant: str, cid: str, last_event_id: str | None) -> int:
        """Where a stream starts: right after `last_event_id`, or at the first message."""
        if not last_event_id:
            return 0
        thread = thread_id(cid, tenant)
        index = await self.events.index_of(thread, last_event_id)
        if index is None:
            # Not yet in the log (or never was): make sure the log is current, look again.
            await self.sync_events(tenant, cid)
            index = await self.events.index_of(thread, last_event_id)
        return index + 1 if index is not None else 0

    # Capabilities -----------------------------------------------------------------------

    def offer(self, receiver: str, conversation_id: str | None = None) -> dict[str, Any]:
        factory = MessageFactory(PLANNER, conversation_id or Conversations.new_id())
        return factory.offer(
            receiver,
            self.services.executors.names(),
            self.services.intents.names(),
            lam_version=LAM_VERSION,
        ).to_dict()
