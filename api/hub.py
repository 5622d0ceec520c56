"""Conversations of one graph, run in the background: one run at a time per conversation.

One process serves many conversations. Each one runs as a background asyncio task; accepted
answers queue up per conversation and are kept in Redis (`srv:pending:C`) until applied, and
every conversation with a run queued or under way is in `srv:running`, so a new process
resumes them at start-up (`Hub.resume_interrupted`). Run one server process per key prefix:
the one-run-per-conversation rule is kept in process (an asyncio lock), not across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from langgraph.types import Command
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.errors import ApiError, not_found
from api.events import EventLog
from api.idempotency import DEFAULT_RECORD_TTL_S, ResponseRecords
from api.models import FINAL_STATUSES
from api.redis_keys import RedisKeys
from api.settings import ServerSettings
from graph.checkpointer import RedisUnavailableError
from graph.conversations import (
    AnswerMismatchError,
    ConversationNotFoundError,
    Conversations,
    NothingWaitingError,
)
from graph.services import Services
from lam import LAM_VERSION, LAMMessage, MessageFactory

logger = logging.getLogger("cpa_planner.server")
# Redis gone away (a restart, a network blip): wait for it rather than fail the conversation.
REDIS_DOWN = (RedisUnavailableError, RedisConnectionError, RedisTimeoutError)

PLANNER = "planner"
# Client-chosen conversation ids end up in Redis keys and URLs: keep them plain.
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


@dataclass
class _Item:
    kind: Literal["open", "answer", "continue"]
    payload: Any = None
    message: LAMMessage | None = None


@dataclass
class _Run:
    """One conversation's in-process state: its lock, queue and runner task."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[_Item] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Ids of messages answered by an accepted answer that is not applied yet.
    answered: set[str] = field(default_factory=set)


class Hub:
    """Conversations of one graph, run in the background, with tenants and idempotency."""

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
        self.responses = ResponseRecords(
            self.redis, self.keys, services.settings.redis_ttl_s or DEFAULT_RECORD_TTL_S
        )
        self.events = EventLog(self.redis, self.keys)
        self._runs: dict[str, _Run] = {}
        self._closing = False

    # Tenants --------------------------------------------------------------------------

    async def owner(self, cid: str) -> str | None:
        tenant = await self.redis.hget(self.keys.conversation(cid), "tenant")
        return tenant.decode() if tenant is not None else None

    async def check_owner(self, tenant: str, cid: str) -> None:
        if await self.owner(cid) != tenant:
            raise not_found(cid)

    async def list_conversations(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.redis.zrevrange(self.keys.tenant(tenant), 0, limit - 1, withscores=True)
        ids = [r[0].decode() for r in rows]
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.exists(self.keys.conversation(cid))
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

    def run_of(self, cid: str) -> _Run:
        return self._runs.setdefault(cid, _Run())

    def busy(self, cid: str) -> bool:
        run = self._runs.get(cid)
        return run is not None and run.task is not None

    async def open(self, tenant: str, request: LAMMessage) -> dict[str, Any]:
        """Open a conversation (or a new turn of a finished one) with a `request`."""
        cid = request.conversation_id or Conversations.new_id()
        if not _CONVERSATION_ID.match(cid):
            raise ApiError(
                422,
                "invalid_message",
                "conversation_id must be 1-128 letters, digits, '.', '_', ':' or '-'",
                [{"field": "conversation_id", "message": "not a usable conversation id"}],
            )
        request = request.model_copy(update={"conversation_id": cid})
        key = self.keys.conversation(cid)
        run = self.run_of(cid)
        async with run.lock:
            created = time.time()
            claimed = await self.redis.hsetnx(key, "tenant", tenant)
            if not claimed:
                if await self.owner(cid) != tenant:
                    raise not_found(cid)
                status = (await self.view(cid))["status"]
                if status not in FINAL_STATUSES:
                    raise ApiError(
                        409,
                        "conversation_busy",
                        f"conversation {cid} is {status}; a new request can start once it "
                        "is done or failed",
                    )
            elif await self.conversations.exists(cid):
                # Made by another entry point (CLI, Studio): not this tenant's to take over.
                await self.redis.delete(key)
                raise not_found(cid)
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, mapping={"created": str(created), "request": request.to_json()})
            pipe.hdel(key, "error")
            for k in self.keys.per_conversation(cid):
                pipe.persist(k)
            if claimed:
                pipe.zadd(self.keys.tenant(tenant), {cid: created})
            pipe.sadd(self.keys.running, cid)
            await pipe.execute()
            self._submit(cid, run, _Item("open", Conversations.opening(request)))
        return {"conversation_id": cid, "message_id": request.id}

    async def answer(self, tenant: str, message: LAMMessage) -> dict[str, Any]:
        """Accept an answer to a waiting `propose` or `assign`; it resumes in the background."""
        cid = str(message.conversation_id)
        await self.check_owner(tenant, cid)
        if message.in_reply_to is None:
            raise ApiError(
                422,
                "invalid_message",
                f"a {message.performative.value} sent to the planner answers a waiting "
                "message: in_reply_to must be its id",
                [{"field": "in_reply_to", "message": "required here"}],
            )
        run = self.run_of(cid)
        async with run.lock:
            if message.in_reply_to in run.answered:
                raise ApiError(
                    409,
                    "already_answered",
                    f"message {message.in_reply_to} has already been answered",
                )
            try:
                await self.conversations.answer(cid, message)
            except (NothingWaitingError, ConversationNotFoundError):
                raise ApiError(
                    409,
                    "nothing_waiting",
                    f"nothing in conversation {cid} waits for an answer to {message.in_reply_to}",
                ) from None
            except AnswerMismatchError as exc:
                raise ApiError(
                    422,
                    "wrong_answer",
                    str(exc),
                    [{"field": "performative", "message": str(exc)}],
                ) from None
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self.keys.pending(cid), message.id, message.to_json())
            pipe.sadd(self.keys.running, cid)
            await pipe.execute()
            run.answered.add(message.in_reply_to)
            self._submit(cid, run, _Item("answer", message=message))
        return {"conversation_id": cid, "message_id": message.id}

    def _submit(self, cid: str, run: _Run, item: _Item) -> None:
        run.queue.append(item)
        run.idle.clear()
        if run.task is None and not self._closing:
            run.task = asyncio.create_task(self._drain(cid, run), name=f"conversation:{cid}")

    async def wait_idle(self, cid: str, seconds: float) -> None:
        """Until the conversation's runner has nothing left to do, or `seconds` passed."""
        run = self._runs.get(cid)
        if run is None or run.task is None or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.idle.wait(), seconds)

    # Running --------------------------------------------------------------------------

    async def _drain(self, cid: str, run: _Run) -> None:
        """Work off the conversation's queue, one run at a time, then tidy up."""
        try:
            while True:
                while run.queue:
                    item = run.queue.pop(0)
                    answers: list[LAMMessage] = []
                    if item.kind == "answer":
                        # Answers that queued up together resume together (one Command).
                        answers = [cast(LAMMessage, item.message)]
                        while run.queue and run.queue[0].kind == "answer":
                            answers.append(cast(LAMMessage, run.queue.pop(0).message))
                    await self._run_item_through_outages(cid, item, answers)
                    if answers:
                        await self.redis.hdel(self.keys.pending(cid), *[a.id for a in answers])
                        for a in answers:
                            run.answered.discard(str(a.in_reply_to))
                await self._finish(cid)
                if not run.queue:  # nothing arrived while finishing
                    break
                await self.redis.sadd(self.keys.running, cid)
        except asyncio.CancelledError:
            raise  # shutting down: `running` keeps the conversation for the next start
        except Exception:
            logger.exception("conversation %s: the runner stopped", cid)
        finally:
            run.task = None
            run.idle.set()
            self.events.notify(cid)
            if not run.lock.locked() and not run.queue and self._runs.get(cid) is run:
                del self._runs[cid]

    async def _run_item(self, cid: str, item: _Item, answers: list[LAMMessage]) -> None:
        payload: Any = item.payload
        if payload is _NO_RUN:
            return
        if answers:
            resume: dict[str, Any] = {}
            for answer in answers:
                try:
                    command = await self.conversations.answer(cid, answer)
                except (NothingWaitingError, AnswerMismatchError, ConversationNotFoundError) as e:
                    # Answered meanwhile (e.g. a replay after a crash): applied once already.
                    logger.info("conversation %s: answer %s dropped: %s", cid, answer.id, e)
                    continue
                resume.update(cast(dict[str, Any], command.resume))
            if not resume:
                # Every answer was applied before (replayed after a crash). If the run then
                # stopped mid-step, nothing else will carry it on: continue it here.
                if (await self.conversations.view(cid)).status != "running":
                    return
                payload = None
            else:
                payload = Command(resume=resume)
        try:
            await self.redis.hdel(self.keys.conversation(cid), "error")
            progress = functools.partial(self.events.publish_progress, cid)
            async for message in self.conversations.stream(cid, payload, progress):
                # Live appends only for someone listening here; `_finish` appends the rest.
                if self.events.listening(cid):
                    await self.events.append(cid, [message])
                    self.events.notify(cid)
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN:
            raise  # not the conversation's fault: `_run_item_through_outages` waits, retries
        except Exception as exc:
            # The graph raised (a bug): the conversation fails visibly.
            logger.exception("conversation %s: the run raised", cid)
            error = {"code": "run_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
            with contextlib.suppress(Exception):
                await self.redis.hset(self.keys.conversation(cid), "error", json.dumps(error))

    async def _run_item_through_outages(
        self, cid: str, item: _Item, answers: list[LAMMessage]
    ) -> None:
        """Run one item; while Redis is away, wait for it, then carry the run on.

        Nothing is lost by running again: what finished is in the checkpoint and is not
        repeated, and answers not yet applied are still pending (applied ones are dropped
        by `_run_item`). A conversation that has a checkpoint continues from it instead of
        being opened a second time.
        """
        while True:
            try:
                await self._run_item(cid, item, answers)
                return
            except REDIS_DOWN as exc:
                logger.warning("conversation %s: Redis went away (%s); waiting for it", cid, exc)
                await self._wait_for_redis()
                opening = item.kind != "answer" and item.payload is not _NO_RUN
                if opening and await self.conversations.exists(cid):
                    item = _Item("continue")

    async def _wait_for_redis(self) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            try:
                await self.redis.ping()
                return
            except REDIS_DOWN:
                delay = min(delay * 2, 5.0)

    async def _finish(self, cid: str) -> None:
        """After the queue ran dry: our keys of a finished conversation get the TTL too."""
        try:
            view: dict[str, Any] = await self.view(cid)
        except ConversationNotFoundError:
            view = {"status": "failed", "messages": []}
        await self.events.append(cid, view["messages"])
        if view["status"] in FINAL_STATUSES:
            # The checkpoints got their TTL when the run ended (graph.conversations).
            ttl = self.services.settings.redis_ttl_s
            if ttl:
                pipe = self.redis.pipeline(transaction=False)
                for key in self.keys.per_conversation(cid):
                    pipe.expire(key, ttl)
                await pipe.execute()
        await self.redis.srem(self.keys.running, cid)

    async def resume_interrupted(self) -> list[str]:
        """At start-up: continue every conversation that was running when we stopped."""
        resumed = []
        for raw in await self.redis.smembers(self.keys.running):
            cid = raw.decode()
            run = self.run_of(cid)
            pending = await self.redis.hvals(self.keys.pending(cid))
            answers = sorted(
                (LAMMessage.from_json(p, max_bytes=None) for p in pending),
                key=lambda m: m.timestamp,
            )
            if answers:
                for answer in answers:
                    run.answered.add(str(answer.in_reply_to))
                    self._submit(cid, run, _Item("answer", message=answer))
            elif not await self.conversations.exists(cid):
                raw_request = await self.redis.hget(self.keys.conversation(cid), "request")
                if raw_request is None:
                    await self.redis.srem(self.keys.running, cid)
                    continue
                request = LAMMessage.from_json(raw_request, max_bytes=None)
                self._submit(cid, run, _Item("open", Conversations.opening(request)))
            elif (await self.conversations.view(cid)).status == "running":
                self._submit(cid, run, _Item("continue"))
            else:
                self._submit(cid, run, _Item("continue", payload=_NO_RUN))
            resumed.append(cid)
        if resumed:
            logger.info("resumed %d conversation(s) that were running: %s", len(resumed), resumed)
        return resumed

    async def close(self) -> None:
        """Stop the runners; their conversations stay in `running` for the next start."""
        self._closing = True
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Looking ----------------------------------------------------------------------------

    async def view(self, cid: str) -> dict[str, Any]:
        """SPEC §5's conversation body, with what only the server knows about runs."""
        try:
            body = (await self.conversations.view(cid)).to_dict()
        except ConversationNotFoundError:
            raw = await self.redis.hget(self.keys.conversation(cid), "request")
            if raw is None:
                raise
            # Accepted, but the run has not written its first checkpoint yet.
            request = json.loads(raw)
            body = {
                "conversation_id": cid,
                "status": "running",
                "intent": None,
                "plan": None,
                "result": None,
                "messages": [request],
            }
        if self.busy(cid):
            body["status"] = "running"
        elif body["status"] == "running":
            raw_error = await self.redis.hget(self.keys.conversation(cid), "error")
            if raw_error is not None:
                body["status"] = "failed"
                body["result"] = {"error": json.loads(raw_error)}
        return body

    async def inbox(self, cid: str, receiver: str | None) -> list[dict[str, Any]]:
        # Copy the answered ids first: an answer applied while the view is read must
        # still hide the message it answered, which that (older) view may list.
        run = self._runs.get(cid)
        answered = set(run.answered) if run is not None else set()
        waiting = await self.conversations.inbox(cid, receiver)
        return [m for m in waiting if m["id"] not in answered]

    async def sync_events(self, cid: str) -> str | None:
        """Append the view's messages not yet in the event log; the status, None if gone."""
        try:
            view = await self.view(cid)
        except ConversationNotFoundError:
            return None
        await self.events.append(cid, view["messages"])
        return str(view["status"])

    # Capabilities -----------------------------------------------------------------------

    def offer(self, receiver: str, conversation_id: str | None = None) -> dict[str, Any]:
        factory = MessageFactory(PLANNER, conversation_id or Conversations.new_id())
        return factory.offer(
            receiver,
            self.services.executors.names(),
            self.services.intents.names(),
            lam_version=LAM_VERSION,
        ).to_dict()


_NO_RUN = object()
