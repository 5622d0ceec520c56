"""The history's archivers: what the conversations' logs gain goes from Redis into SQL.

The run's path never waits on the database. The event log's append script (`api.events`)
adds an entry `{thread, start, messages}` to the stream `srv:archive` in the same atomic step
as the append, and the script that records where a run stopped (`graph.storage.records`) adds
`{thread, status, log_length, stop}`. Every server process (replica) runs one `Archiver`, a
consumer of the consumer group `archivers` on that stream: it reads a batch (waiting
`linger_s`, half a second, for more when it got less than a full one), stores it in one
transaction (`graph.history.archive.archive`), and only then acknowledges and deletes the
entries.

One archiver reads while one is enough: the one holding `srv:archive:lead` (a lease of
`lead_s`, renewed at each read; taken by whichever archiver finds it free). The others look
once a second and join in while the stream holds `join_backlog` entries or more (two full
batches: the lead falls behind), or take the lead when it is free (its archiver stopped, or
died and let it lapse). Why not every archiver at once: each would get a share of every
half second's entries, so twice the transactions, and a conversation's entries spread over
two batches have its record recomputed twice (docs/replicas.md, "What a second replica
costs per run"). So:

- at least once: an archiver that dies (kill -9) between reading and acknowledging leaves its
  entries pending; another claims them once idle for `claim_idle_s` (`XAUTOCLAIM`) and stores
  them again;
- exactly once in SQL: a message is unique by its id within its conversation, and a second
  store of it adds nothing; its place in the log is its index in the event log, so the order
  read back is the log's, whichever archiver stored what first;
- a database that is down delays the archive, never a conversation: the archiver retries
  its batch (backing off up to 30 s) while the stream grows; one that refuses what it is
  given (a data error) gets the batch entry by entry, and an entry it refuses alone is left
  out and logged, so one bad entry cannot hold up the archive; the backlog is the
  metric `cpa_history_backlog` (entries) and `cpa_history_backlog_age_seconds` (the oldest
  entry's age), read from Redis at scrape time.

Each archiver also deletes what is past its tenant's retention (`HistoryStore.purge`), about
once every `purge_every_s`; any replica may, deleting twice deletes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import ResponseError
from sqlalchemy.exc import DataError, IntegrityError

from graph.history.archive import Appended, Entry, Stopped
from graph.history.record import Stop
from graph.history.settings import HistorySettings
from graph.history.store import HistoryStore
from graph.storage.client import cancel_and_wait
from graph.storage.errors import REDIS_DOWN
from graph.storage.outage import retried
from graph.storage.server_keys import ARCHIVE_GROUP, RedisKeys

logger = logging.getLogger("cpa_planner.history")

_BLOCK_MS = 2000
_MAX_DELAY_S = 30.0
_FORGET_CONSUMER_MS = 3600 * 1000
# How often an archiver that does not lead looks at the lead and the backlog.
_STANDBY_LOOK_S = 1.0

# KEYS: the lead. ARGV: this archiver, the lease (ms). 1: this archiver leads (took or renewed).
LEAD_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# KEYS: the lead. ARGV: this archiver. Gives the lead up if this archiver holds it.
RESIGN_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

ARCHIVED = Counter(
    "cpa_history_archived_messages_total",
    "LAM messages stored in the history (each once, however often delivered)",
)
ARCHIVE_FAILURES = Counter(
    "cpa_history_archive_failures_total",
    "Batches the history's database did not take (retried until it does)",
)


def parse_entry(fields: dict[bytes, bytes]) -> Entry:
    """An archive stream entry (ValueError/KeyError for one we did not write)."""
    thread = fields[b"thread"].decode()
    tenant, slash, cid = thread.partition("/")
    if not slash:
        raise ValueError(f"not a server thread: {thread!r}")
    if b"messages" in fields:
        messages = json.loads(fields[b"messages"])
        return Appended(tenant, cid, int(fields[b"start"]), list(messages))
    stop = json.loads(fields[b"stop"] or b"{}")
    return Stopped(
        tenant,
        cid,
        Stop(
            entry="",  # set from the entry's id by the caller
            status=fields[b"status"].decode(),
            log_length=int(fields[b"log_length"]),
            plan=stop.get("plan"),
            result=stop.get("result"),
        ),
    )


class Archiver:
    """This replica's consumer of `srv:archive` (see the module's doc)."""

    def __init__(
        self,
        redis: Any,
        keys: RedisKeys,
        store: HistoryStore,
        settings: HistorySettings,
        name: str,
        *,
        claim_idle_s: float = 60.0,
        purge_every_s: float = 3600.0,
        linger_s: float = 0.5,
        lead_s: float = 10.0,
        join_backlog: int | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store = store
        self.settings = settings
        self.name = name
        self.batch = settings.history_batch
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.purge_every_s = purge_every_s
        self.linger_s = linger_s
        self.lead_ms = int(lead_s * 1000)
        self.join_backlog = join_backlog if join_backlog is not None else 2 * self.batch
        self._lead = redis.register_script(LEAD_LUA)
        self._resign = redis.register_script(RESIGN_LUA)
        self._tasks: list[asyncio.Task[None]] = []
        self.stored = 0  # messages this archiver stored (new ones only)

    async def start(self) -> None:
        await self._ensure_group()
        self._tasks = [
            asyncio.create_task(self._consume(), name="history-archiver"),
            asyncio.create_task(self._sweep(), name="history-takeover"),
        ]

    async def close(self) -> None:
        """Stop; a batch not yet stored stays pending and is claimed by another archiver."""
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []
        # Another archiver takes the lead at its next look, not when the lease lapses.
        with contextlib.suppress(*REDIS_DOWN, ResponseError):
            await self._resign(keys=[self.keys.archive_lead], args=[self.name])

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.archive, ARCHIVE_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _consume(self) -> None:
        while True:
            # Whatever the read raised (Redis away, the group gone) is retried, backing off.
            if not await retried(
                self._may_read, retry_on=(Exception,), on_retry=self._reading_failed
            ):
                await asyncio.sleep(_STANDBY_LOOK_S * random.uniform(0.8, 1.2))
                continue
            reply = await retried(
                self._read_batch, retry_on=(Exception,), on_retry=self._reading_failed
            )
            entries = [entry for _, batch in reply or [] for entry in batch]
            if entries and len(entries) < self.batch and self.linger_s:
                # A moment for more to arrive: one transaction for many appends (a run
                # makes several), each conversation's record recomputed once for them.
                await asyncio.sleep(self.linger_s)
                with contextlib.suppress(*REDIS_DOWN, ResponseError):
                    more = await self.redis.xreadgroup(
                        ARCHIVE_GROUP,
                        self.name,
                        {self.keys.archive: ">"},
                        count=self.batch - len(entries),
                    )
                    entries += [entry for _, batch in more or [] for entry in batch]
            if entries:
                try:
                    await self._store(entries)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # they stay pending: claimed again once idle
                    await self._trouble("storing archive entries", exc, 1.0)

    async def _may_read(self) -> bool:
        """This archiver leads (taking or renewing the lead), or the lead falls behind."""
        if await self._lead(keys=[self.keys.archive_lead], args=[self.name, self.lead_ms]):
            return True
        return bool(await self.redis.xlen(self.keys.archive) >= self.join_backlog)

    async def _read_batch(self) -> Any:
        return await self.redis.xreadgroup(
            ARCHIVE_GROUP, self.name, {self.keys.archive: ">"}, count=self.batch, block=_BLOCK_MS
        )

    async def _sweep(self) -> None:
        """Claim entries idle past `claim_idle_s` (their archiver died); purge now and then."""
        interval = max(min(self.claim_idle_ms / 2000, 30.0), 0.1)
        next_purge = time.monotonic() + random.uniform(0, min(self.purge_every_s, 60.0))
        rounds = 0
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                await self._claim_idle()
                rounds += 1
                if rounds % 100 == 0:
                    await self._forget_gone_consumers()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.purge_every_s * random.uniform(0.9, 1.1)
                    deleted = await self.store.purge(self.settings)
                    if deleted:
                        logger.info("history: %d conversations past their retention", deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._trouble("claiming idle archive entries", exc)

    async def _claim_idle(self) -> None:
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.keys.archive,
                ARCHIVE_GROUP,
                self.name,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch,
            )
            start, claimed = reply[0], reply[1]
            claimed = [(entry_id, fields) for entry_id, fields in claimed if fields]
            if claimed:
                await self._store(claimed)
            if start in (b"0-0", "0-0") or not claimed:
                return

    async def _forget_gone_consumers(self) -> None:
        for consumer in await self.redis.xinfo_consumers(self.keys.archive, ARCHIVE_GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if (
                name != self.name
                and int(consumer["pending"]) == 0
                and int(consumer["idle"]) > _FORGET_CONSUMER_MS
            ):
                await self.redis.xgroup_delconsumer(self.keys.archive, ARCHIVE_GROUP, name)

    async def _store(self, raw: list[tuple[Any, dict[bytes, bytes]]]) -> None:
        """Store a batch until the database takes it, then acknowledge and delete it."""
        ids: list[str] = []
        entries: list[Entry] = []
        for entry_id, fields in raw:
            entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            ids.append(entry)
            try:
                parsed = parse_entry(fields)
            except (KeyError, ValueError, TypeError) as exc:
                logger.error("history: archive entry %s is not ours (%s); dropped", entry, exc)
                continue
            if isinstance(parsed, Stopped):
                parsed = Stopped(parsed.tenant, parsed.conversation_id, _with_entry(parsed, entry))
            entries.append(parsed)
        delay = 0.5
        while True:
            try:
                stored = await self.store.archive(entries)
                break
            except asyncio.CancelledError:
                raise
            except (DataError, IntegrityError) as exc:
                # The database refuses what it was given, not that it was given: stored one
                # by one, only an entry it refuses alone is left out (and said).
                ARCHIVE_FAILURES.inc()
                stored = await self._one_by_one(entries, exc)
                break
            except Exception as exc:
                ARCHIVE_FAILURES.inc()
                logger.warning(
                    "history: the database did not take %d entries (%s: %s); retrying in %.1f s",
                    len(entries),
                    type(exc).__name__,
                    " ".join(str(exc).split())[:300],
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY_S)
        self.stored += stored
        ARCHIVED.inc(stored)
        # Stored already: while Redis is away, a retry of them would add nothing; wait.
        await retried(lambda: self._acknowledge(ids), on_retry=self._acknowledging_failed)

    async def _acknowledge(self, ids: list[str]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(self.keys.archive, ARCHIVE_GROUP, *ids)
            pipe.xdel(self.keys.archive, *ids)
            await pipe.execute()
        except ResponseError as exc:  # the stream or its group is gone: nothing to ack
            logger.warning("history: archived entries not acknowledged (%s)", exc)

    async def _one_by_one(self, entries: list[Entry], first: Exception) -> int:
        if len(entries) == 1:
            entry = entries[0]
            logger.error(
                "history: the database refuses an entry of conversation %s/%s; left out (%s)",
                entry.tenant,
                entry.conversation_id,
                " ".join(str(first).split())[:300],
            )
            return 0
        stored = 0
        for entry in entries:
            while True:
                try:
                    stored += await self.store.archive([entry])
                    break
                except (DataError, IntegrityError) as exc:
                    await self._one_by_one([entry], exc)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database went away meanwhile: wait for it
                    logger.warning("history: the database did not take an entry (%s)", exc)
                    await asyncio.sleep(1.0)
        return stored

    async def _reading_failed(self, exc: BaseException) -> None:
        await self._trouble("reading the archive stream", exc)

    async def _acknowledging_failed(self, exc: BaseException) -> None:
        await self._trouble("acknowledging archived entries", exc)

    async def _trouble(self, doing: str, exc: BaseException, delay: float = 0.0) -> None:
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            logger.warning("history: the archive's consumer group was gone; creating it again")
            with contextlib.suppress(Exception):
                await self._ensure_group()
        elif isinstance(exc, REDIS_DOWN):
            logger.warning("history: Redis went away while %s (%s); waiting for it", doing, exc)
        else:
            logger.error("history: %s failed; trying again", doing, exc_info=exc)
        if delay:
            await asyncio.sleep(delay)


def _with_entry(stopped: Stopped, entry: str) -> Stop:
    stop = stopped.stop
    return Stop(entry, stop.status, stop.log_length, stop.plan, stop.result)


class HistoryBacklog(Collector):
    """`cpa_history_backlog` and `cpa_history_backlog_age_seconds`, read for this scrape."""

    def __init__(self, entries: int, age_s: float) -> None:
        self.entries, self.age_s = entries, age_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "cpa_history_backlog",
            "Archive stream entries (log appends, run stops) not yet stored in the history",
            value=self.entries,
        )
        yield GaugeMetricFamily(
            "cpa_history_backlog_age_seconds",
            "How long the oldest entry not yet stored in the history has waited",
            value=self.age_s,
        )


async def backlog(redis: Any, keys: RedisKeys) -> HistoryBacklog:
    """The archive's backlog now: entries in the stream (stored ones are deleted) and the
    oldest one's age (a stream id starts with its time in ms)."""
    pipe = redis.pipeline(transaction=False)
    pipe.xlen(keys.archive)
    pipe.xrange(keys.archive, count=1)
    length, first = await pipe.execute()
    age = 0.0
    if first:
        entry_id = first[0][0]
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        age = max(time.time() - int(entry_id.partition("-")[0]) / 1000, 0.0)
    return HistoryBacklog(int(length), age)
