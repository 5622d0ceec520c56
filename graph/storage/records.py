"""The server's record of each conversation in Redis: opening, answers, status, tenants' load.

The truth about a conversation is its record, `srv:{H}:conv` (`graph.storage.server_keys`),
changed by one Lua script per step on the conversation's own slot (with its fence, pending
answers, answered messages and event log: one hash tag, `{H}`), so no crash or race leaves
it half-claimed, answered twice or without its TTL:

- `open` claims a thread for a `request`, or refuses it: a retry of the same request gets
  `retry` (the original answer), a conversation still running or waiting `busy`, a tenant
  at its cap on running or waiting conversations `limit_running` / `limit_waiting`. A claim
  records the request as work to do (the record's `open` field).
- `accept` takes an answer to a waiting `propose`/`assign`: once per answered message,
  whichever replica it reaches (`srv:{H}:answered`); the answer waits in `srv:{H}:pending`
  until a runner applies it.
- `finish` records where a run stopped (`running`, `waiting`, `done` or `failed`), only
  with the lease's current generation (fencing, `graph.storage.leases`): the status, the
  TTL of a finished conversation's keys (all of them), the conversation's body where it
  stopped (`view`: readers get it without rebuilding it from the checkpoints), and a notice
  on `srv:status`. The work the run did (the opened request, the applied answers) is
  cleared in the same step; work that arrived meanwhile keeps the conversation `running`.

Every change of status also bumps the record's `rev` (the clock in microseconds, or one
more than the last: it only grows, also across an expired and reused thread).

What the record is indexed by lives on other slots (a Redis Cluster runs no script across
two): the tenant's counts `srv:{tenant:T}:running|waiting` (its caps), the global index
`srv:{:index:k:s}:running|waiting` (expiry, metrics; k the thread's shard of INDEX_SHARDS,
`graph.storage.server_keys`: one slot per shard, so that every change's write to it spreads
over a Cluster's primaries), the job stream `srv:jobs` and the history's `srv:archive`.
Each index keeps, per thread, the `rev` it shows (`…:revs`), and takes a change only over
an older one (`_INDEX_LUA`): changes of one conversation may reach an index in any order,
the newest wins (a thread is in one shard only: the same holds there). The steps of each
change, in this order:

    open    1. read the record (request id, status, rev): a retry or a busy conversation
               is answered here
            2. admit on the tenant's slot (`_ADMIT_LUA`, atomic): under both caps, the thread
               joins the tenant's running set as a reservation at the rev read (a change of
               an older rev can no longer take it out); else `limit_*`. Two replicas
               admitting at once are serialized by the tenant's slot: the cap holds.
            3. the same reservation in the global index's shard of the thread (no caps)
            4. claim on the conversation's slot (`_CLAIM_LUA`): `busy`/`retry` if another
               open got there first, else running with the request to open, a new rev
            5. the indexes at the claim's rev, then the job (`XADD srv:jobs`)
    accept  1. the answer on the conversation's slot (`_ACCEPT_LUA`): running, a new rev
            2. the indexes at that rev, then the job
    finish  1. the status on the conversation's slot (`_FINISH_LUA`, fenced): a new rev
            2. the indexes at that rev, then the history's stop entry (`srv:archive`)

A crash between two steps leaves the record right and an index behind, never the other way:

- after open's 2 or 3 (no claim): a reservation, an extra entry in running sets;
- after a claim, an accept or a finish, before its indexes: the thread is still in the set
  of its previous status (a reservation, or `running`/`waiting`), at an older rev;
- after a claim or an accept, before its job: a conversation with work and no job.

`repair_indexes` (every replica's expiry sweep, `api.expiry`, calls it now and then) walks
every index (each shard of the global one, each tenant's of `srv:tenants`): an entry whose
record has a newer rev is brought up to it; an entry that disagrees with a record of the
same rev (a reservation whose claim never came, or was refused) or of none (gone) is taken
out if it still does so at the next sweep (an open under way is not a crash); a running
conversation with work to do, its lease free and that at two sweeps running, gets a job.
So the worst a crash leaves is an extra entry for a sweep or two (a tenant counted once too
often, a wait expired a little late) or a job a sweep late; never a lost conversation, and
never a job run twice (a job only says "look": the work is done under the lease, once,
`graph.storage.leases`). A history entry (`api.archiver`) is added after its step, so a
crash between the two loses it: the history then lacks that stop or that append (it is not
the conversation's truth).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import ResponseError

from graph.state import Status
from graph.storage.fencing import FENCE_PRELUDE, raise_if_fenced
from graph.storage.server_keys import Index, RedisKeys

# Bumps the record's rev (KEYS[REC]) and returns it as text: the clock in microseconds, or
# one more than the last if that is not more (a clock set back, a failover).
_BUMP = """
local function bump(record)
  local now = redis.call('TIME')
  local rev = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local last = tonumber(redis.call('HGET', record, 'rev') or '0')
  if rev <= last then rev = last + 1 end
  local text = string.format('%d', rev)
  redis.call('HSET', record, 'rev', text)
  return text
end
"""

# KEYS: the record, then the keys that expire with the conversation (`RedisKeys.expiring`:
#       the record again, pending, ...)
# ARGV: conversation id, created, request JSON, request id, tenant, channel, thread
# -> {outcome, status, rev}
_CLAIM_LUA = (
    _BUMP
    + """
local status = redis.call('HGET', KEYS[1], 'status')
local rev = redis.call('HGET', KEYS[1], 'rev') or '0'
if redis.call('HGET', KEYS[1], 'request_id') == ARGV[4] then
  return {'retry', status or '', rev}
end
if status and status ~= 'done' and status ~= 'failed' then
  return {'busy', status, rev}
end
local new = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'tenant', ARGV[5], 'conversation_id', ARGV[1],
  'request', ARGV[3], 'request_id', ARGV[4], 'status', 'running', 'open', ARGV[4])
redis.call('HDEL', KEYS[1], 'error', 'view')
if new then
  redis.call('HSET', KEYS[1], 'created', ARGV[2])
end
for i = 2, #KEYS do
  redis.call('PERSIST', KEYS[i])
end
rev = bump(KEYS[1])
redis.call('PUBLISH', ARGV[6], ARGV[7])
if new then return {'new', 'running', rev} end
return {'turn', 'running', rev}
"""
)

# KEYS: the record, answered, pending. ARGV: thread, answered message id, answer id, answer
# JSON, channel. -> {outcome, rev}
_ACCEPT_LUA = (
    _BUMP
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'gone', '0'}
end
local taken = redis.call('HGET', KEYS[2], ARGV[2])
if taken then
  if taken == ARGV[3] then return {'retry', '0'} end
  return {'taken', '0'}
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[1], 'status', 'running')
redis.call('HDEL', KEYS[1], 'view')
local rev = bump(KEYS[1])
redis.call('PUBLISH', ARGV[5], ARGV[1])
return {'accepted', rev}
"""
)

# KEYS: fence, the record, then the keys that expire with the conversation
#       (`RedisKeys.expiring`: the record again, then pending as KEYS[4], answered, events
#       as KEYS[6], index)
# ARGV: generation, thread, status, ttl (0: none), channel, opened request id ("": none),
#       the body where the run stopped (JSON; "": none), applied answer ids...
# -> {status recorded ('gone': the record expired), rev, the event log's length}
_FINISH_LUA = (
    FENCE_PRELUDE
    + _BUMP
    + """
local thread, status = ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- Gone (expired): the indexes drop it, over any rev it had (the clock's, or more).
  local now = redis.call('TIME')
  return {'gone', string.format('%d', tonumber(now[1]) * 1000000 + tonumber(now[2])), 0}
end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[2], 'open') == ARGV[6] then
  redis.call('HDEL', KEYS[2], 'open')
end
for i = 8, #ARGV do
  redis.call('HDEL', KEYS[4], ARGV[i])
end
if redis.call('HLEN', KEYS[4]) > 0 or redis.call('HEXISTS', KEYS[2], 'open') == 1 then
  status = 'running'  -- more work arrived meanwhile: the runner carries on
end
redis.call('HSET', KEYS[2], 'status', status)
if status == ARGV[3] and status ~= 'running' and ARGV[7] ~= '' then
  redis.call('HSET', KEYS[2], 'view', ARGV[7])
else
  redis.call('HDEL', KEYS[2], 'view')
end
if (status == 'done' or status == 'failed') and tonumber(ARGV[4]) > 0 then
  for i = 3, #KEYS do
    redis.call('EXPIRE', KEYS[i], ARGV[4])
  end
end
local rev = bump(KEYS[2])
redis.call('PUBLISH', ARGV[5], thread)
return {status, rev, redis.call('LLEN', KEYS[6])}
"""
)

# One index (a tenant's or a shard of the global one). KEYS: running set, waiting zset, revs zset.
# ARGV: thread, status (running, waiting; anything else: neither), rev, since (waiting's
# score), and "" for a change of the record (taken only over an older rev), or for a repair
# the rev the index must show ("none": no rev), which stays (a `gone` record's goes).
# -> 1 applied, 0 not (the index shows a newer rev, or another than the repair's).
_INDEX_LUA = """
local thread, status, repair = ARGV[1], ARGV[2], ARGV[5]
local shown = redis.call('ZSCORE', KEYS[3], thread)
if repair == '' then
  if shown and tonumber(ARGV[3]) <= tonumber(shown) then return 0 end
  redis.call('ZADD', KEYS[3], ARGV[3], thread)
elseif repair == 'none' then
  if shown then return 0 end
elseif not shown or tonumber(shown) ~= tonumber(repair) then
  return 0
end
if status == 'running' then
  redis.call('SADD', KEYS[1], thread)
  redis.call('ZREM', KEYS[2], thread)
elseif status == 'waiting' then
  redis.call('SREM', KEYS[1], thread)
  redis.call('ZADD', KEYS[2], ARGV[4], thread)
else
  redis.call('SREM', KEYS[1], thread)
  redis.call('ZREM', KEYS[2], thread)
  if repair ~= '' and status == 'gone' then redis.call('ZREM', KEYS[3], thread) end
end
return 1
"""

# A reservation for an open. KEYS: running set, waiting zset, revs zset[, the tenant's
# conversations]. ARGV: thread, the record's rev as read ("0": no record), max running ("":
# no caps), max waiting, conversation id, created.
# -> 'admitted', 'limit_running', 'limit_waiting', or 'stale' (the index shows a newer rev
# than the one read: the record changed since; read it again). The index keeps the higher
# rev of the two: a change older than the record as read can no longer take the thread out.
_ADMIT_LUA = """
local thread = ARGV[1]
local shown = redis.call('ZSCORE', KEYS[3], thread)
if shown and ARGV[2] ~= '0' and tonumber(shown) > tonumber(ARGV[2]) then
  return 'stale'
end
if redis.call('SISMEMBER', KEYS[1], thread) == 0 and ARGV[3] ~= '' then
  if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 'limit_running'
  end
  local waiting = redis.call('ZCARD', KEYS[2])
  if redis.call('ZSCORE', KEYS[2], thread) then waiting = waiting - 1 end
  if waiting >= tonumber(ARGV[4]) then
    return 'limit_waiting'
  end
end
redis.call('SADD', KEYS[1], thread)
redis.call('ZREM', KEYS[2], thread)
if not shown or tonumber(ARGV[2]) > tonumber(shown) then
  redis.call('ZADD', KEYS[3], ARGV[2], thread)
end
if #KEYS > 3 then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[6], ARGV[5])
end
return 'admitted'
"""

OpenOutcome = Literal["new", "turn", "retry", "busy", "limit_running", "limit_waiting"]
_ADMIT_TRIES = 5


@dataclass(frozen=True)
class Opened:
    outcome: OpenOutcome
    status: str  # with `retry` and `busy`: the conversation's status


AcceptOutcome = Literal["accepted", "retry", "taken", "gone"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ConversationRecords:
    """The scripts above, for one key prefix."""

    def __init__(
        self, redis: Any, keys: RedisKeys, ttl_s: int | None, *, archive: bool = False
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.archive = archive  # a run's stops go to the history's archive stream too
        self._claim = redis.register_script(_CLAIM_LUA)
        self._accept = redis.register_script(_ACCEPT_LUA)
        self._finish = redis.register_script(_FINISH_LUA)
        self._index = redis.register_script(_INDEX_LUA)
        self._admit = redis.register_script(_ADMIT_LUA)
        # Index entries found wrong at the last repair: taken out if still so at the next.
        self._suspects: dict[tuple[str, str], str] = {}
        self._jobless: set[str] = set()

    async def open(
        self,
        tenant: str,
        thread: str,
        conversation_id: str,
        request_json: str,
        request_id: str,
        *,
        max_running: int,
        max_waiting: int,
    ) -> Opened:
        k = self.keys
        tenant_index = k.tenant_index(tenant)
        created = str(time.time())
        for _ in range(_ADMIT_TRIES):
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(k.tenants, tenant)
            pipe.hmget(k.conversation(thread), "request_id", "status", "rev")
            _, (seen_request, seen_status, seen_rev) = await pipe.execute()
            status = _text(seen_status) if seen_status is not None else ""
            if seen_request is not None and _text(seen_request) == request_id:
                return Opened("retry", status)
            if status in ("running", "waiting"):
                return Opened("busy", status)
            rev = _text(seen_rev) if seen_rev is not None else "0"
            admitted = _text(
                await self._admit(
                    keys=[*tenant_index.keys(), k.tenant(tenant)],
                    args=[thread, rev, max_running, max_waiting, conversation_id, created],
                )
            )
            if admitted != "stale":
                break
        else:
            return Opened("busy", "running")  # changing under us all along: someone has it
        if admitted != "admitted":
            return Opened(admitted, "")  # type: ignore[arg-type]
        # The repair's handle on a claim whose job never came: in the global index first.
        await self._admit(keys=k.index_of(thread).keys(), args=[thread, rev, "", "", "", ""])
        outcome, status, claimed = await self._claim(
            keys=[k.conversation(thread), *k.expiring(thread)],
            args=[
                conversation_id,
                created,
                request_json,
                request_id,
                tenant,
                k.status_channel,
                thread,
            ],
        )
        outcome = _text(outcome)
        if outcome in ("new", "turn"):
            await self._indexed(tenant, thread, "running", _text(claimed), job=True)
        return Opened(outcome, _text(status))  # type: ignore[arg-type]

    async def accept(
        self, tenant: str, thread: str, answered_id: str, answer_id: str, answer_json: str
    ) -> AcceptOutcome:
        """Take an answer to message `answered_id`, once per message across replicas."""
        k = self.keys
        outcome, rev = await self._accept(
            keys=[k.conversation(thread), k.answered(thread), k.pending(thread)],
            args=[thread, answered_id, answer_id, answer_json, k.status_channel],
        )
        outcome = _text(outcome)
        if outcome == "accepted":
            await self._indexed(tenant, thread, "running", _text(rev), job=True)
        return outcome  # type: ignore[return-value]

    async def finish(
        self,
        tenant: str,
        thread: str,
        status: Status,
        generation: str,
        *,
        opened: str = "",
        applied: list[str] | None = None,
        view: str | None = None,
        stop: str | None = None,
    ) -> None:
        """Record where the run of lease `generation` stopped, and clear the work it did.

        `view` (JSON) is the conversation's body there, kept for readers while it stays
        so (a status other than `running`); a new request or answer drops it. `stop`
        (JSON: its plan and result) goes to the history with the status, when it is on.

        Raises FencedError if `generation` is no longer the conversation's current one.
        """
        if not generation:  # the prelude lets an empty one through: a status is always fenced
            raise ValueError(f"thread {thread}: finish needs the lease's generation")
        k = self.keys
        args: list[Any] = [
            generation,
            thread,
            status,
            self.ttl_s or 0,
            k.status_channel,
            opened,
            view or "",
            *(applied or []),
        ]
        try:
            recorded, rev, log_length = await self._finish(
                keys=[k.fence(thread), k.conversation(thread), *k.expiring(thread)], args=args
            )
        except ResponseError as exc:
            raise_if_fenced(exc, thread, generation)
            raise
        recorded = _text(recorded)
        history = None
        if self.archive and recorded not in ("running", "gone"):
            history = {
                "thread": thread,
                "status": recorded,
                "log_length": int(log_length),
                "stop": stop or "{}",
            }
        await self._indexed(tenant, thread, recorded, _text(rev), history=history)

    async def _indexed(
        self,
        tenant: str,
        thread: str,
        status: str,
        rev: str,
        *,
        job: bool = False,
        history: dict[str, Any] | None = None,
    ) -> None:
        """A change of the record at `rev` into both indexes, then its job or its history
        entry: each command on one slot. The two index scripts run as commands of their own
        (at once), not queued on a pipeline: redis-py's cluster pipeline does not load a
        script a node lacks (NOSCRIPT), a script called alone is loaded and retried."""
        k = self.keys
        args = [thread, status, rev, str(time.time()), ""]
        await asyncio.gather(
            self._index(keys=k.tenant_index(tenant).keys(), args=args),
            self._index(keys=k.index_of(thread).keys(), args=args),
        )
        if job or history is not None:
            pipe = self.redis.pipeline(transaction=False)
            if job:
                pipe.xadd(k.jobs, {"thread": thread})
            if history is not None:
                pipe.xadd(k.archive, history)
            await pipe.execute()

    async def record(self, thread: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.conversation(thread))
        return {key.decode(): value.decode() for key, value in raw.items()}

    async def pending_answers(self, thread: str) -> list[bytes]:
        """The accepted answers not applied yet (JSON)."""
        return list(await self.redis.hvals(self.keys.pending(thread)))

    async def answered(self, thread: str) -> set[str]:
        """Ids of the messages an accepted answer answered (applied or not)."""
        return {m.decode() for m in await self.redis.hkeys(self.keys.answered(thread))}

    async def waited_too_long(self, older_than: float, limit: int = 100) -> list[str]:
        """Threads waiting since before `older_than` (epoch s), oldest first, at most `limit`:
        the oldest `limit` of each shard of the global index, merged."""
        pipe = self.redis.pipeline(transaction=False)
        for index in self.keys.indexes():
            pipe.zrangebyscore(
                index.waiting, "-inf", older_than, start=0, num=limit, withscores=True
            )
        shards = await pipe.execute()
        rows = heapq.merge(*shards, key=lambda row: (row[1], row[0]))
        return [_text(thread) for thread, _ in itertools.islice(rows, limit)]

    async def oldest_wait(self, tenant: str) -> float | None:
        """Since when the tenant's longest-waiting conversation waits (epoch s)."""
        rows = await self.redis.zrange(self.keys.tenant_waiting(tenant), 0, 0, withscores=True)
        return float(rows[0][1]) if rows else None

    # Repair ------------------------------------------------------------------------------

    async def repair_indexes(self) -> int:
        """Bring every index in line with the records (see the module's doc): what a crash
        between the steps of a change left behind. Returns the entries changed and the jobs
        added. Call it now and then (each call is one look; a suspect entry is taken out at
        the second look that still finds it wrong)."""
        k = self.keys
        tenants = sorted(_text(t) for t in await self.redis.smembers(k.tenants))
        indexes = [*k.indexes(), *(k.tenant_index(t) for t in tenants)]
        suspects: dict[tuple[str, str], str] = {}
        running: set[str] = set()
        changed = 0
        for index in indexes:
            found = await self._look(index.running, index, suspects, running)
            changed += found
        self._suspects = suspects
        changed += await self._repair_jobs(running)
        return changed

    async def _look(
        self, name: str, index: Index, suspects: dict[tuple[str, str], str], running: set[str]
    ) -> int:
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.smembers(index.running)
        pipe.zrange(index.waiting, 0, -1)
        pipe.zrange(index.revs, 0, -1, withscores=True)
        members, waiting_raw, revs = await pipe.execute()
        shown = {_text(t): str(int(score)) for t, score in revs}
        in_running = {_text(t) for t in members}
        in_waiting = {_text(t) for t in waiting_raw}
        # The members, and the revs of records that may have expired (older than a TTL).
        old = time.time() - self.ttl_s if self.ttl_s else 0.0
        aged = {t for t, rev in shown.items() if int(rev) < old * 1_000_000}
        threads = sorted(in_running | in_waiting | aged)
        if not threads:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for thread in threads:
            pipe.hmget(k.conversation(thread), "status", "rev")
        states = await pipe.execute()
        changed = 0
        for thread, (status_raw, rev_raw) in zip(threads, states, strict=True):
            status = _text(status_raw) if status_raw is not None else "gone"
            rev = _text(rev_raw) if rev_raw is not None else ""
            if status == "running":
                running.add(thread)
            listed = thread in in_running or thread in in_waiting
            if (
                (thread in in_running) == (status == "running")
                and (thread in in_waiting) == (status == "waiting")
                and (listed or status != "gone")
            ):
                continue
            seen = shown.get(thread, "none")
            if rev and (seen == "none" or int(rev) > int(seen)):
                # A change that never reached this index: bring it up to the record.
                args = [thread, status, rev, str(time.time()), ""]
                changed += await self._index(keys=index.keys(), args=args)
                continue
            # A reservation whose claim never came (or was refused), an entry or a rev of a
            # gone record: put right if a second look finds it so (an open under way is not
            # a crash).
            key = (name, thread)
            if self._suspects.get(key) == seen:
                args = [thread, status, rev or "0", str(time.time()), seen]
                changed += await self._index(keys=index.keys(), args=args)
            else:
                suspects[key] = seen
        return changed

    async def _repair_jobs(self, running: set[str]) -> int:
        """A job for each running conversation with work, its lease free, at two looks."""
        k = self.keys
        threads = sorted(running)
        if not threads:
            self._jobless = set()
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for thread in threads:
            pipe.exists(k.lease(thread))
            pipe.hmget(k.conversation(thread), "open", "holder")
            pipe.hlen(k.pending(thread))
        raw = await pipe.execute()
        jobless = set()
        for i, thread in enumerate(threads):
            leased, (open_id, holder), answers = raw[3 * i : 3 * i + 3]
            if not leased and (open_id or holder or answers):
                jobless.add(thread)
        due = sorted(jobless & self._jobless)
        self._jobless = jobless - set(due)
        if due:
            pipe = self.redis.pipeline(transaction=False)
            for thread in due:
                pipe.xadd(k.jobs, {"thread": thread})
            await pipe.execute()
        return len(due)
