"""Conversations run by whichever replica claims them: jobs on a Redis stream, a lease each.

Every server process on one Redis and key prefix (a replica) is a consumer of the consumer
group `runners` on the stream `srv:jobs`. Work for a conversation (a request to open, an
accepted answer) is recorded with the conversation, and a job `{thread: H}` added to the
stream, in one script (`graph.storage.records`). A replica reads a job when it has a free slot
(`CPA_RUNS_PER_REPLICA`) and tries the conversation's lease (`graph.storage.leases`):

- acquired: it does everything pending for the conversation (`api.running`'s
  `Runs.run_claim`, the callback the runner is given), renewing the lease and resetting
  its jobs' idle time while it runs; then it releases the lease
  unless more work arrived meanwhile (then it carries on), and acknowledges and deletes
  its jobs;
- held by another runner: the job stays unacknowledged, and is tried again once it has
  been idle for a lease period (below), so a holder that dies meanwhile still leaves a
  job behind for its successor;
- free, but nothing to do (a job whose work another runner already did): acknowledged.

Takeover: every replica claims, now and then (`XAUTOCLAIM`), the jobs idle for longer than
the lease, whichever consumer read them, and tries their leases again. A replica that died
stopped renewing its lease and resetting its jobs: both time out, and the conversation is
carried on from its last checkpoint. A paused replica that comes back finds its lease
gone; its writes carry a stale generation and are refused (fencing, `graph.storage.leases`).

Why a stream and not a job-queue library (arq, saq, taskiq): they deliver each job at least
once, but none keeps one run per *conversation* at a time, nor gives a fencing token; we
would need these leases on top anyway. The stream's consumer group gives at-least-once
delivery and takeover of a dead consumer's jobs (`XAUTOCLAIM`) in core Redis (>= 6.2),
through redis-py's own commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from graph.storage.client import cancel_and_wait
from graph.storage.errors import REDIS_DOWN
from graph.storage.fencing import FencedError
from graph.storage.leases import Claim, LeaseLostError, Leases
from graph.storage.outage import retried
from graph.storage.server_keys import JOB_GROUP, RedisKeys

logger = logging.getLogger("cpa_planner.server")

# Does what a conversation's lease was taken for (`api.running.Runs.run_claim`).
RunClaim = Callable[[Claim], Coroutine[Any, Any, None]]
# How long one XREADGROUP blocks (below the client's socket timeout).
_BLOCK_MS = 2000
# Consumers (replicas) gone for this long with nothing pending are removed from the group.
_FORGET_CONSUMER_MS = 3600 * 1000


@dataclass
class _Run:
    """A conversation this replica holds the lease of."""

    claim: Claim
    entries: list[str]  # jobs this run answers for: acknowledged when it ends
    accepting: bool = True  # jobs read meanwhile join this run (it checks before releasing)
    lost: bool = False  # the lease expired: stop without writing
    closing: bool = False  # this replica shuts down: hand the conversation back
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Runner:
    """This replica's consumer of `srv:jobs`: claims conversations and runs them."""

    def __init__(
        self,
        redis: Any,
        keys: RedisKeys,
        leases: Leases,
        work: RunClaim,
        *,
        max_runs: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.leases = leases
        self.name = leases.holder
        self._work = work
        self._max_runs = max_runs
        self._slots = asyncio.Semaphore(max_runs)
        self._runs: dict[str, _Run] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._lease_s = leases.lease_ms / 1000

    # Life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._ensure_group()
        self._tasks = [
            asyncio.create_task(self._consume(), name="jobs-consumer"),
            asyncio.create_task(self._sweep(), name="jobs-takeover"),
        ]

    async def stop_reading(self) -> None:
        """Take no more jobs (and take none over); the runs under way go on."""
        for task in self._tasks:
            await cancel_and_wait(task)

    async def close(self) -> None:
        """Stop reading jobs; hand the conversations under way to the other replicas."""
        await self.stop_reading()
        for run in list(self._runs.values()):
            run.closing = True
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(cancel_and_wait(h) for h in list(self._handlers)))

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.jobs, JOB_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def running(self) -> int:
        """Conversations this replica runs now."""
        return len(self._runs)

    # Reading jobs -----------------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            # Whatever the read raised (Redis away, the group gone) is retried, backing off.
            reply = await retried(
                self._read_job, retry_on=(Exception,), on_retry=self._reading_failed
            )
            entries = [entry for _, batch in reply or [] for entry in batch]
            if not entries:
                self._slots.release()
                continue
            for entry_id, fields in entries:
                self._spawn(entry_id, fields)

    async def _read_job(self) -> Any:
        """One job read for a free slot, which it holds (freed again if the read fails)."""
        await self._slots.acquire()
        try:
            return await self.redis.xreadgroup(
                JOB_GROUP, self.name, {self.keys.jobs: ">"}, count=1, block=_BLOCK_MS
            )
        except BaseException:
            self._slots.release()
            raise

    async def _reading_failed(self, exc: BaseException) -> None:
        await self._trouble("reading jobs", exc)

    async def _trouble(self, doing: str, exc: BaseException) -> None:
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            logger.warning("jobs: the consumer group was gone; creating it again")
            with contextlib.suppress(Exception):
                await self._ensure_group()
        elif isinstance(exc, REDIS_DOWN):
            logger.warning("jobs: Redis went away while %s (%s); waiting for it", doing, exc)
        else:
            logger.error("jobs: %s failed; trying again", doing, exc_info=exc)

    def _spawn(self, entry_id: bytes | str, fields: dict[bytes, bytes] | None) -> None:
        """Handle one job in the background; it holds one of this replica's slots."""
        entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        thread = (fields or {}).get(b"thread")
        task = asyncio.create_task(self._handle(entry, thread.decode() if thread else None))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _sweep(self) -> None:
        """Take over jobs idle longer than a lease: their replica died or is cut off."""
        interval = max(self._lease_s / 2, 0.1)
        rounds = 0
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                await self._claim_idle()
                rounds += 1
                if rounds % 100 == 0:
                    await self._forget_gone_consumers()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._trouble("taking over idle jobs", exc)

    async def _claim_idle(self) -> None:
        free = self._max_runs - len(self._handlers)
        if free <= 0:
            return
        _, claimed, *_ = await self.redis.xautoclaim(
            self.keys.jobs,
            JOB_GROUP,
            self.name,
            min_idle_time=self.leases.lease_ms,
            start_id="0-0",
            count=free,
        )
        for entry_id, fields in claimed:
            await self._slots.acquire()
            self._spawn(entry_id, fields)

    async def _forget_gone_consumers(self) -> None:
        for consumer in await self.redis.xinfo_consumers(self.keys.jobs, JOB_GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if (
                name != self.name
                and int(consumer["pending"]) == 0
                and int(consumer["idle"]) > _FORGET_CONSUMER_MS
            ):
                await self.redis.xgroup_delconsumer(self.keys.jobs, JOB_GROUP, name)

    # Running a conversation ------------------------------------------------------------------

    async def _handle(self, entry: str, thread: str | None) -> None:
        try:
            if thread is None:  # not a job of ours (or deleted): nothing to do
                await self._ack([entry])
                return
            run = self._runs.get(thread)
            if run is not None:
                if run.accepting:
                    run.entries.append(entry)  # that run checks for new work before it ends
                    return
                await run.done.wait()
            acquired = await self.leases.acquire(thread)
            if acquired.claim is None:
                if acquired.outcome == "idle":
                    await self._ack([entry])
                # busy: another runner has it; the job is tried again once idle a lease long
                return
            await self._run(acquired.claim, [entry])
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN as exc:
            logger.warning("job %s: Redis went away (%s); it will be taken up again", entry, exc)
        except Exception:
            logger.exception("job %s (%s) failed; it will be taken up again", entry, thread)
        finally:
            self._slots.release()

    async def _run(self, claim: Claim, entries: list[str]) -> None:
        thread = claim.thread
        run = _Run(claim, entries)
        self._runs[thread] = run
        renewer = asyncio.create_task(self._renew(run), name=f"lease:{thread}")
        try:
            while True:
                run.task = asyncio.create_task(self._work(run.claim), name=f"run:{thread}")
                await run.task
                run.accepting = False
                more = await self.leases.release(run.claim)
                if more is None:
                    break
                run.claim, run.accepting = more, True
            await self._ack(run.entries)
        except (asyncio.CancelledError, LeaseLostError, FencedError) as exc:
            if run.closing:
                await self._hand_back(run)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            elif run.lost or not isinstance(exc, asyncio.CancelledError):
                # Its jobs stay unacknowledged: they are the successor's to finish.
                logger.warning(
                    "conversation %s: lost its lease (generation %s); another replica "
                    "carries it on",
                    thread,
                    run.claim.generation,
                )
            else:
                raise
        except Exception:
            # A bug, not the conversation's fault: free it for a retry (its jobs stay).
            with contextlib.suppress(Exception):
                await self.leases.release(run.claim, "unfinished")
            raise
        finally:
            # Not `cancel(); await`: a cancellation landing in the renewal's Redis read can
            # be swallowed by redis-py, and the renewer would then sleep on forever.
            await cancel_and_wait(renewer)
            if self._runs.get(thread) is run:
                del self._runs[thread]
            run.done.set()

    async def _renew(self, run: _Run) -> None:
        """Keep the lease and the run's jobs fresh; stop the run if the lease was lost."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                ours = await self.leases.renew(run.claim)
                if ours and run.entries:
                    await self.redis.xclaim(
                        self.keys.jobs, JOB_GROUP, self.name, 0, run.entries, justid=True
                    )
            except REDIS_DOWN:
                continue  # unknown; the writes are fenced whatever happened meanwhile
            if not ours:
                run.lost = True
                if run.task is not None:
                    run.task.cancel()
                return

    async def _hand_back(self, run: _Run) -> None:
        """Shutting down mid-run: free the lease and queue the conversation afresh."""
        try:
            await self.leases.release(run.claim, "unfinished")
            pipe = self.redis.pipeline(transaction=True)
            pipe.xadd(self.keys.jobs, {"thread": run.claim.thread})
            pipe.xack(self.keys.jobs, JOB_GROUP, *run.entries)
            pipe.xdel(self.keys.jobs, *run.entries)
            await pipe.execute()
        except Exception as exc:  # its jobs stay pending: taken over after a lease
            logger.warning("conversation %s: not handed back (%s)", run.claim.thread, exc)

    async def _ack(self, entries: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.keys.jobs, JOB_GROUP, *entries)
        pipe.xdel(self.keys.jobs, *entries)
        await pipe.execute()
