"""Running a conversation under its lease: find the work, run it, record where it stopped.

`api.runner` claims a conversation's lease and hands the claim to `Runs.run_claim`, which
does what the lease was taken for. The work is found in Redis (`graph.storage.records`): a
request to open, accepted answers, or a run a previous holder left unfinished (it died, or
lost its lease). That one is carried on from its last checkpoint, which repeats no finished
ToDo (their results are saved as pending writes) and sends no `assign` twice (the same
stable id: the event log and the inbox keep one copy). Every write carries the lease's
generation (fencing, `graph.storage.leases`).

While Redis is away, the run waits for it and carries on from the checkpoint
(`graph.storage.outage`). A run that raises for any other reason fails visibly, with the
error as its result. Where a run stops (`finish`), the conversation's record says so:
`waiting`, `done` or `failed`, the view as it was then, its size for the tenant's quota, and
a finished one's keys get the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

from langgraph.types import Command

from api.limits import TenantLimits, measure
from api.models import FINAL_STATUSES
from api.tenants import split_thread
from api.views import Views
from graph.conversations import (
    AnswerMismatchError,
    ConversationNotFoundError,
    Conversations,
    NothingWaitingError,
    NotTheReceiverError,
    WrongTodoError,
)
from graph.storage.errors import REDIS_DOWN
from graph.storage.event_log import EventLog
from graph.storage.fencing import FENCE, FencedError
from graph.storage.leases import Claim
from graph.storage.outage import through_outages
from graph.storage.records import ConversationRecords
from graph.storage.server_keys import RedisKeys
from lam import LAMMessage

logger = logging.getLogger("cpa_planner.server")
REMOTE_PREFIX = "a2a:"  # receivers of assigns to A2A agents (`nodes/executors/a2a.py`)
_ANSWER_ERRORS = (
    NothingWaitingError,
    AnswerMismatchError,
    ConversationNotFoundError,
    NotTheReceiverError,
    WrongTodoError,
)


@dataclass(frozen=True)
class Work:
    """What one claim of a conversation's lease is for.

    `run` False: nothing to run, only to record where the conversation stands. Else the
    graph is streamed with `input`: the opening state of a request, a `Command` resuming
    the answered interrupts, or None to carry on from the last checkpoint.
    """

    run: bool
    input: Any = None
    opened: str = ""  # the id of the request this claim opens ("" if none)
    applied: list[str] = field(default_factory=list)  # the ids of the answers it applies

    @classmethod
    def nothing(cls, applied: list[str] | None = None) -> Work:
        return cls(run=False, applied=applied or [])

    @classmethod
    def carry_on(cls, *, opened: str = "", applied: list[str] | None = None) -> Work:
        return cls(run=True, input=None, opened=opened, applied=applied or [])


@dataclass(eq=False)  # a service, not a value: compared by identity
class Runs:
    """Runs the conversations whose leases this replica claims (`api.runner` calls it)."""

    conversations: Conversations
    saver: Any
    keys: RedisKeys
    records: ConversationRecords
    events: EventLog
    limits: TenantLimits
    views: Views
    ttl_s: int | None  # a finished conversation's keys' TTL (`redis_ttl_s`)

    @property
    def redis(self) -> Any:
        return self.saver.client

    async def run_claim(self, claim: Claim) -> None:
        """Do what the conversation's lease was taken for, then record where it stopped.

        While Redis is away, waits for it and carries on from the checkpoint.
        """
        thread = claim.thread
        unfinished = claim.unfinished

        def outage(exc: BaseException) -> None:
            nonlocal unfinished
            logger.warning("conversation %s: Redis went away (%s); waiting for it", thread, exc)
            unfinished = True  # whatever ran is in the checkpoint: continue from there

        async def work() -> Work:
            found = await self.work_of(claim, unfinished)
            if found.run:
                await self._run(thread, found.input, claim.generation)
            return found

        done = await through_outages(work, self.redis, outage)
        await self.finish(thread, claim.generation, opened=done.opened, applied=done.applied)

    async def work_of(self, claim: Claim, unfinished: bool) -> Work:
        """What the claim is for, as found in Redis (`unfinished`: a run may have begun)."""
        thread = claim.thread
        tenant, cid = split_thread(thread)
        if claim.open:
            record = await self.records.record(thread)
            if record.get("request_id") != claim.open or "request" not in record:
                return Work.nothing()  # replaced meanwhile: nothing of ours to open
            request = LAMMessage.from_json(record["request"], max_bytes=None)
            if unfinished and await self._has_message(tenant, cid, request.id):
                return Work.carry_on(opened=claim.open)  # a previous holder began this turn
            return Work(run=True, input=Conversations.opening(request), opened=claim.open)
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
                except _ANSWER_ERRORS as e:
                    # Applied before (the run then stopped before recording it): once only.
                    logger.info("conversation %s: answer %s dropped: %s", cid, answer.id, e)
                    continue
                resume.update(cast(dict[str, Any], command.resume))
            if resume:
                return Work(run=True, input=Command(resume=resume), applied=applied)
            # Every answer was applied before. If the run then stopped mid-step, carry it on.
            if await self._still_running(tenant, cid):
                return Work.carry_on(applied=applied)
            return Work.nothing(applied)
        if unfinished and await self._still_running(tenant, cid):
            return Work.carry_on()  # taken over mid-run: carry on from the checkpoint
        return Work.nothing()

    async def _still_running(self, tenant: str, cid: str) -> bool:
        """Whether the turn has steps left: its view says `running` while the newest
        checkpoint has any task, also one whose writes were stored before the run stopped
        (the state shows them applied, maybe as `done`, yet no checkpoint holds them)."""
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

    async def finish(
        self, thread: str, generation: str, *, opened: str = "", applied: list[str] | None = None
    ) -> None:
        """After a run stopped: record where it stopped; a finished one gets its TTL.

        Reads the conversation from its checkpoint, appends what the event log lacks, then
        records the status (`waiting`, `done` or `failed`; `running` if more work arrived
        meanwhile) and clears the work done, under the lease's generation. A finished
        conversation's keys get the TTL. While Redis is away, waits for it and records then.
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

        def outage(exc: BaseException) -> None:
            logger.warning("Redis went away (%s); waiting for it", exc)

        await through_outages(record, self.redis, outage)

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
        expires = time.time() + self.ttl_s if final and self.ttl_s else None
        await self.limits.record_size(tenant, thread, await measure(self.redis, keys), expires)

    async def _stopped_view(self, tenant: str, cid: str) -> dict[str, Any]:
        try:
            return await self.views.view(tenant, cid, settled=True)
        except ConversationNotFoundError:
            # The run raised before its first checkpoint: it failed.
            return {"status": "failed", "messages": []}
