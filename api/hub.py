"""Conversations of one graph, served to tenants: accept messages, run, look, expire.

A tenant's conversation `C` runs in the LangGraph thread `T/C` (`graph.conversations`), so
two tenants can use the same id, and one tenant learns nothing about another's ids. The
server's record of it (`api.records`) says its status; every key of a finished one gets
the TTL. Runs happen in the background (`api.runner`), one at a time per conversation;
accepted answers are kept in Redis until applied, and every conversation with a run queued
or under way is in `srv:running`, so a new process resumes them at start-up
(`Hub.resume_interrupted`). A conversation waiting longer than `CPA_WAIT_EXPIRY_S` ends
failed with code `expired` (`Hub.expire_waiting`, run periodically).

Run one server process per key prefix: the one-run-per-conversation rule is kept in
process (`api.runner`), not across processes (issue 11).
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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.errors import ApiError, not_found
from api.events import EventLog, Feeds
from api.idempotency import DEFAULT_RECORD_TTL_S, ResponseRecords
from api.models import FINAL_STATUSES
from api.records import ConversationRecords
from api.redis_keys import RedisKeys
from api.runner import NO_RUN, Runner, Work
from api.settings import ServerSettings
from graph.checkpointer import RedisUnavailableError
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
from lam import LAM_VERSION, LAMMessage, MessageFactory

logger = logging.getLogger("cpa_planner.server")
# Redis gone away (a restart, a network blip): wait for it rather than fail the conversation.
REDIS_DOWN = (RedisUnavailableError, RedisConnectionError, RedisTimeoutError)

PLANNER = "planner"
EXPIRED = "expired"
# Namespace of conversation ids derived from the id of the request that opened them.
_NEW_CONVERSATION = uuid.UUID("5d0b8a43-2f7e-4b8e-9a51-3c8f6f0e2d17")


def split_thread(thread: str) -> tuple[str, str]:
    """(tenant, conversation id) of a server thread `T/C`."""
    tenant, _, cid = thread.partition("/")
    return tenant, cid


class Hub:
    """Conversations of one graph, run in the background, per tenant, with idempotency."""

    def __init__(
        self,
        conversations: Conversations,
        saver: Any,
        services: Services,
        config: ServerSettings,
    ) -> None:
        self.conversations = conversations
        self.saver = saver
        self.redis = saver.client
        self.services = services
        self.config = config
        self.keys = RedisKeys(saver.prefix)
        ttl = services.settings.redis_ttl_s
        self.records = ConversationRecords(self.redis, self.keys, ttl)
        self.responses = ResponseRecords(self.redis, self.keys, ttl or DEFAULT_RECORD_TTL_S)
        self.events = EventLog(self.redis, self.keys)
        self.feeds = Feeds(self.events, config.sse_refresh_s)
        self.runner = Runner(self.run_work, self.finish)
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Resume what was running, subscribe for the SSE feeds, start expiring waits."""
        await self.resume_interrupted()
        await self.feeds.start()
        self._sweeper = asyncio.create_task(self._sweep_waits(), name="expire-waits")

    async def close(self) -> None:
        """Stop the runners; their conversations stay in `srv:running` for the next start."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.feeds.close()
        await self.runner.close()

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

    def busy(self, thread: str) -> bool:
        return self.runner.busy(thread)

    async def open(self, tenant: str, request: LAMMessage) -> dict[str, Any]:
        """Open a conversation (or a new turn of a finished one) with a `request`.

        A request that names no conversation gets one derived from its own id, so a retry
        of it (after a crash, the response lost) lands in the same conversation.
        """
        cid = request.conversation_id or str(uuid.uuid5(_NEW_CONVERSATION, request.id))
        request = request.model_copy(update={"conversation_id": cid})
        # Serialised before anything is claimed: what cannot be stored claims nothing.
        request_json = request.to_json()
        request_json.encode("utf-8")
        thread = thread_id(cid, tenant)
        accepted = {"conversation_id": cid, "message_id": request.id}
        async with self.runner.hold(thread):
            opened = await self.records.open(
                tenant,
                thread,
                cid,
                request_json,
                request.id,
                max_running=self.config.max_running_per_tenant,
                max_waiting=self.config.max_waiting_per_tenant,
            )
            if opened.outcome == "retry":  # the same request again (e.g. after a crash)
                return accepted
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
            self.runner.submit(thread, Work("open", Conversations.opening(request)))
        return accepted

    async def _waiting_retry_after(self, tenant: str) -> int:
        oldest = await self.records.oldest_wait(tenant)
        if oldest is None:
            return self.config.retry_after_s
        return max(1, math.ceil(oldest + self.config.wait_expiry_s - time.time()))

    async def answer(self, tenant: str, message: LAMMessage) -> dict[str, Any]:
        """Accept an answer to a waiting `propose` or `assign`; it resumes in the background."""
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
        async with self.runner.hold(thread):
            if await self._already_taken(thread, message):
                return accepted  # this very answer again (e.g. after a crash)
            if message.in_reply_to in self.runner.answered(thread):
                raise ApiError(
                    409,
                    "already_answered",
                    f"message {message.in_reply_to} has already been answered",
                )
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
            await self.records.mark(
                tenant, thread, "running", answer=(message.id, message.to_json())
            )
            self.runner.submit(thread, Work("answer", answers=[message]))
        return accepted

    async def _already_taken(self, thread: str, message: LAMMessage) -> bool:
        """Whether this answer was accepted before: pending, or already in the log."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hexists(self.keys.pending(thread), message.id)
        pipe.hexists(self.keys.event_index(thread), message.id)
        pending, logged = await pipe.execute()
        return bool(pending or logged)

    async def wait_idle(self, thread: str, seconds: float) -> None:
        await self.runner.wait_idle(thread, seconds)

    # Running --------------------------------------------------------------------------

    async def run_work(self, thread: str, work: Work) -> None:
        """Run one piece of work; while Redis is away, wait for it, then carry the run on.

        Nothing is lost by running again: what finished is in the checkpoint and is not
        repeated, and answers not yet applied are still pending (applied ones are dropped
        by `_run`). A conversation that has a checkpoint continues from it instead of
        being opened a second time.
        """
        tenant, cid = split_thread(thread)
        while True:
            try:
                await self._run(thread, work)
                break
            except REDIS_DOWN as exc:
                logger.warning("conversation %s: Redis went away (%s); waiting for it", cid, exc)
                await self._wait_for_redis()
                if work.kind == "open" and await self.conversations.exists(cid, owner=tenant):
                    work = Work("continue")
        if work.answers:
            await self._redis_retried(
                lambda: self.redis.hdel(self.keys.pending(thread), *[a.id for a in work.answers])
            )

    async def _run(self, thread: str, work: Work) -> None:
        tenant, cid = split_thread(thread)
        payload: Any = work.payload
        if payload is NO_RUN:
            return
        if work.kind == "answer":
            resume: dict[str, Any] = {}
            for answer in work.answers:
                try:
                    command = await self.conversations.answer(cid, answer, owner=tenant)
                except (
                    NothingWaitingError,
                    AnswerMismatchError,
                    ConversationNotFoundError,
                    NotTheReceiverError,
                    WrongTodoError,
                ) as e:
                    # Answered meanwhile (e.g. a replay after a crash): applied once already.
                    logger.info("conversation %s: answer %s dropped: %s", cid, answer.id, e)
                    continue
                resume.update(cast(dict[str, Any], command.resume))
            if not resume:
                # Every answer was applied before (replayed after a crash). If the run then
                # stopped mid-step, nothing else will carry it on: continue it here.
                if (await self.conversations.view(cid, owner=tenant)).status != "running":
                    return
                payload = None
            else:
                payload = Command(resume=resume)
        try:
            await self.redis.hdel(self.keys.conversation(thread), "error")
            progress = functools.partial(self.events.publish_progress, thread)
            async for message in self.conversations.stream(cid, payload, progress, owner=tenant):
                # Every message as it appears: listeners anywhere are told (`api.events`).
                await self.events.append(thread, [message])
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN:
            raise  # not the conversation's fault: `run_work` waits, retries
        except Exception as exc:
            # The graph raised (a bug, or a setting a run cannot use): it fails visibly.
            logger.exception("conversation %s: the run raised", cid)
            error = {"code": "run_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
            with contextlib.suppress(Exception):
                await self.redis.hset(self.keys.conversation(thread), "error", json.dumps(error))

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

    async def finish(self, thread: str) -> None:
        """After a run stopped: record where it stopped; a finished one gets its TTL.

        Reads the conversation as it is now (the runner is no longer counted as busy),
        appends what the event log lacks, then marks the status: `waiting`, or `done` /
        `failed`, which also gives every key of the conversation the TTL.
        """
        tenant, cid = split_thread(thread)

        async def record() -> None:
            view = await self._stopped_view(tenant, cid, thread)
            await self.events.append(thread, view["messages"])
            status = view["status"]
            if status == "running":
                # Stopped mid-turn, yet nothing raised: say so rather than leave a ghost.
                logger.error("conversation %s: the run stopped before the turn ended", cid)
                error = {"code": "run_stopped", "message": "the run stopped before the turn ended"}
                await self.redis.hset(self.keys.conversation(thread), "error", json.dumps(error))
                status = "failed"
            if status in FINAL_STATUSES:
                # A run that raised never reached `respond`, which expires the checkpoints.
                await self.conversations.expire(thread)
            await self.records.mark(tenant, thread, status)

        await self._redis_retried(record)

    async def _stopped_view(self, tenant: str, cid: str, thread: str) -> dict[str, Any]:
        try:
            return await self.view(tenant, cid)
        except ConversationNotFoundError:
            # The run raised before its first checkpoint: it failed.
            return {"status": "failed", "messages": []}

    # Start-up and expiry ----------------------------------------------------------------

    async def resume_interrupted(self) -> list[str]:
        """At start-up: continue every conversation that was running when we stopped."""
        resumed = []
        for raw in await self.redis.smembers(self.keys.running):
            thread = raw.decode()
            tenant, cid = split_thread(thread)
            pending = await self.redis.hvals(self.keys.pending(thread))
            answers = sorted(
                (LAMMessage.from_json(p, max_bytes=None) for p in pending),
                key=lambda m: m.timestamp,
            )
            if answers:
                self.runner.submit(thread, Work("answer", answers=answers))
            elif not await self.conversations.exists(cid, owner=tenant):
                raw_request = await self.redis.hget(self.keys.conversation(thread), "request")
                if raw_request is None:
                    await self.redis.srem(self.keys.running, thread)
                    continue
                request = LAMMessage.from_json(raw_request, max_bytes=None)
                self.runner.submit(thread, Work("open", Conversations.opening(request)))
            elif (await self.conversations.view(cid, owner=tenant)).status == "running":
                self.runner.submit(thread, Work("continue"))
            else:
                self.runner.submit(thread, Work("continue", payload=NO_RUN))
            resumed.append(thread)
        if resumed:
            logger.info("resumed %d conversation(s) that were running: %s", len(resumed), resumed)
        return resumed

    async def expire_waiting(self) -> list[str]:
        """End every conversation that has waited longer than CPA_WAIT_EXPIRY_S as failed.

        Each gets a `failure` with code `expired` in its log; nothing waits in its inbox any
        more; it is kept for the TTL like any finished conversation. Returns the threads.
        """
        expiry = self.config.wait_expiry_s
        expired = []
        for thread in await self.records.waited_too_long(time.time() - expiry):
            tenant, cid = split_thread(thread)
            async with self.runner.hold(thread):
                since = await self.redis.zscore(self.keys.waiting, thread)
                if since is None or since > time.time() - expiry or self.busy(thread):
                    continue  # answered meanwhile
                # Not waiting after all (NothingWaiting): `finish` records what it is.
                with contextlib.suppress(NothingWaitingError, ConversationNotFoundError):
                    await self.conversations.abandon(
                        cid,
                        EXPIRED,
                        f"no answer within {expiry:g} s (CPA_WAIT_EXPIRY_S): the conversation "
                        "has ended",
                        owner=tenant,
                    )
                await self.finish(thread)
            expired.append(thread)
        if expired:
            logger.info("expired %d conversation(s) that waited too long", len(expired))
        return expired

    async def _sweep_waits(self) -> None:
        interval = min(max(self.config.wait_expiry_s / 4, 0.2), 60.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_waiting()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("expiring waiting conversations failed; trying again later")

    # Looking ----------------------------------------------------------------------------

    async def view(self, tenant: str, cid: str) -> dict[str, Any]:
        """The conversation body of docs/http.md, with what only the server knows about runs."""
        thread = thread_id(cid, tenant)
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
        if self.busy(thread):
            body["status"] = "running"
        elif body["status"] in ("running", "failed"):
            # A run that raised: its error is the result (a graph's own failure has none).
            raw_error = await self.redis.hget(self.keys.conversation(thread), "error")
            if raw_error is not None:
                body["status"] = "failed"
                body["result"] = {"error": json.loads(raw_error)}
        return body

    async def inbox(self, tenant: str, cid: str, receiver: str | None) -> list[dict[str, Any]]:
        # Copy the answered ids first: an answer applied while the view is read must
        # still hide the message it answered, which that (older) view may list.
        answered = self.runner.answered(thread_id(cid, tenant))
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
