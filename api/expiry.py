"""Ending waits: a conversation waiting longer than `CPA_WAIT_EXPIRY_S` ends failed, `expired`.

Every replica sweeps now and then (`WaitExpiry.start`); each conversation is ended under its
lease, so any replica may do it and one that is being answered meanwhile is left alone.
`end_waiting` serves a cancel too (A2A's `tasks/cancel`, `api.a2a`). The sweep also drops,
every `FORGET_THREADS_S`, the ids of conversations gone with their TTL from the
checkpointer's thread registry (it is not a key of theirs), and, every `REPAIR_INDEXES_S`,
puts right what a crash between two steps of a change left in the conversations' indexes
(`ConversationRecords.repair_indexes`: an extra entry, a job that never came).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from api.tenants import split_thread
from graph.conversations import ConversationNotFoundError, Conversations, NothingWaitingError
from graph.storage.client import cancel_and_wait
from graph.storage.fencing import FENCE
from graph.storage.leases import LeaseLostError, Leases
from graph.storage.records import ConversationRecords
from graph.storage.server_keys import RedisKeys

logger = logging.getLogger("cpa_planner.server")
EXPIRED = "expired"
FORGET_THREADS_S = 600.0  # how often the ids of expired conversations are dropped
REPAIR_INDEXES_S = 30.0  # how often the indexes are compared with the records

# Records where a conversation's run stopped, under the lease's generation (`Runs.finish`).
Finish = Callable[[str, str], Awaitable[None]]


@dataclass(eq=False)  # a service, not a value: compared by identity
class WaitExpiry:
    """Ends the conversations that wait too long (or are cancelled), under their leases."""

    conversations: Conversations
    saver: Any
    keys: RedisKeys
    records: ConversationRecords
    leases: Leases
    finish: Finish
    wait_expiry_s: float
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    @property
    def redis(self) -> Any:
        return self.saver.client

    def start(self) -> None:
        """Sweep now and then, until `close`."""
        self._sweeper = asyncio.create_task(self._sweep_waits(), name="expire-waits")

    async def close(self) -> None:
        if self._sweeper is not None:
            await cancel_and_wait(self._sweeper)

    async def expire_waiting(self) -> list[str]:
        """End every conversation that has waited longer than CPA_WAIT_EXPIRY_S as failed.

        Each gets a `failure` with code `expired` in its log; nothing waits in its inbox any
        more; it is kept for the TTL like any finished conversation. Each is ended under
        its lease (any replica may do it; a conversation being answered is left alone).
        Returns the threads.
        """
        expiry = self.wait_expiry_s
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
            since = await self.redis.zscore(self.keys.index_of(thread).waiting, thread)
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
        interval = min(max(self.wait_expiry_s / 4, 0.2), 60.0)
        forgotten_at = repaired_at = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                if time.monotonic() - repaired_at >= REPAIR_INDEXES_S:
                    repaired_at = time.monotonic()
                    if fixed := await self.records.repair_indexes():
                        logger.info("put %d index entries or jobs right", fixed)
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
