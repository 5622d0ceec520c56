"""The server's record of each conversation in Redis: opening, answers, status, tenants' load.

Each change is one Lua script (atomic, one round trip), so no crash or race leaves a
conversation half-claimed, counted twice, answered twice, or without its TTL:

- `open` claims a thread for a `request`, or refuses it: a retry of the same request gets
  `retry` (the original answer), a conversation still running or waiting `busy`, a tenant
  at its cap on running or waiting conversations `limit_running` / `limit_waiting`. A claim
  records the request as work to do (the record's `open` field) and queues a job
  (`srv:jobs`) in the same step.
- `accept` takes an answer to a waiting `propose`/`assign`: once per answered message,
  whichever replica it reaches (`srv:answered:H`); the answer waits in `srv:pending:H`
  until a runner applies it, and a job is queued in the same step.
- `finish` records where a run stopped (`running`, `waiting`, `done` or `failed`), only
  with the lease's current generation (fencing, `graph.storage.leases`): the status field, the sets
  that expire waits (`srv:waiting`) and count each tenant's load, the TTL of a finished
  conversation's keys (all of them), the conversation's body where it stopped (`view`:
  readers get it without rebuilding it from the checkpoints), and a notice on `srv:status`.
  The work the run did (the opened request, the applied answers) is cleared in the same step;
  work that arrived meanwhile keeps the conversation `running`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import ResponseError

from graph.state import Status
from graph.storage.fencing import FENCE_PRELUDE, raise_if_fenced
from graph.storage.server_keys import RedisKeys

# KEYS: conv, tenant index, running, tenant running, tenant waiting, jobs, then the keys
#       that expire with the conversation (`RedisKeys.expiring`: conv again, pending, ...)
# ARGV: thread, conversation id, created, request JSON, request id, max running,
#       max waiting, tenant, channel
_OPEN_LUA = """
local status = redis.call('HGET', KEYS[1], 'status')
if redis.call('HGET', KEYS[1], 'request_id') == ARGV[5] then
  return {'retry', status or ''}
end
if status and status ~= 'done' and status ~= 'failed' then
  return {'busy', status}
end
if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[6]) then
  return {'limit_running', ''}
end
if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[7]) then
  return {'limit_waiting', ''}
end
local new = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'tenant', ARGV[8], 'conversation_id', ARGV[2],
  'request', ARGV[4], 'request_id', ARGV[5], 'status', 'running', 'open', ARGV[5])
redis.call('HDEL', KEYS[1], 'error', 'view')
if new then
  redis.call('HSET', KEYS[1], 'created', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
for i = 7, #KEYS do
  redis.call('PERSIST', KEYS[i])
end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[6], '*', 'thread', ARGV[1])
redis.call('PUBLISH', ARGV[9], ARGV[1])
if new then return {'new', ''} end
return {'turn', ''}
"""

# KEYS: conv, answered, pending, running, waiting, tenant running, tenant waiting, jobs
# ARGV: thread, answered message id, answer id, answer JSON, channel
_ACCEPT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'gone'
end
local taken = redis.call('HGET', KEYS[2], ARGV[2])
if taken then
  if taken == ARGV[3] then return 'retry' end
  return 'taken'
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[1], 'status', 'running')
redis.call('HDEL', KEYS[1], 'view')
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('XADD', KEYS[8], '*', 'thread', ARGV[1])
redis.call('PUBLISH', ARGV[5], ARGV[1])
return 'accepted'
"""

# KEYS: fence, conv, running, waiting, tenant running, tenant waiting, archive stream, then
#       the keys that expire with the conversation (`RedisKeys.expiring`: conv again, then
#       pending as KEYS[9], answered, events as KEYS[11], index)
# ARGV: generation, thread, status, now, ttl (0: none), channel, opened request id ("":
#       none), the body where the run stopped (JSON; "": none), the plan and result for
#       the history (JSON; "": the history is off), applied answer ids...
_FINISH_LUA = (
    FENCE_PRELUDE
    + """
local thread, status = ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- Gone (expired): only make sure nothing counts it any more.
  redis.call('SREM', KEYS[3], thread)
  redis.call('ZREM', KEYS[4], thread)
  redis.call('SREM', KEYS[5], thread)
  redis.call('ZREM', KEYS[6], thread)
  return 0
end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[2], 'open') == ARGV[7] then
  redis.call('HDEL', KEYS[2], 'open')
end
for i = 10, #ARGV do
  redis.call('HDEL', KEYS[9], ARGV[i])
end
if redis.call('HLEN', KEYS[9]) > 0 or redis.call('HEXISTS', KEYS[2], 'open') == 1 then
  status = 'running'  -- more work arrived meanwhile: the runner carries on
end
if status == 'running' then
  redis.call('SADD', KEYS[3], thread)
  redis.call('SADD', KEYS[5], thread)
  redis.call('ZREM', KEYS[4], thread)
  redis.call('ZREM', KEYS[6], thread)
elseif status == 'waiting' then
  redis.call('SREM', KEYS[3], thread)
  redis.call('SREM', KEYS[5], thread)
  redis.call('ZADD', KEYS[4], ARGV[4], thread)
  redis.call('ZADD', KEYS[6], ARGV[4], thread)
else
  redis.call('SREM', KEYS[3], thread)
  redis.call('SREM', KEYS[5], thread)
  redis.call('ZREM', KEYS[4], thread)
  redis.call('ZREM', KEYS[6], thread)
end
redis.call('HSET', KEYS[2], 'status', status)
if status == ARGV[3] and status ~= 'running' and ARGV[8] ~= '' then
  redis.call('HSET', KEYS[2], 'view', ARGV[8])
else
  redis.call('HDEL', KEYS[2], 'view')
end
if (status == 'done' or status == 'failed') and tonumber(ARGV[5]) > 0 then
  for i = 8, #KEYS do
    redis.call('EXPIRE', KEYS[i], ARGV[5])
  end
end
if ARGV[9] ~= '' and status ~= 'running' then
  redis.call('XADD', KEYS[7], '*', 'thread', thread, 'status', status,
    'log_length', redis.call('LLEN', KEYS[11]), 'stop', ARGV[9])
end
redis.call('PUBLISH', ARGV[6], thread)
return 1
"""
)

OpenOutcome = Literal["new", "turn", "retry", "busy", "limit_running", "limit_waiting"]


@dataclass(frozen=True)
class Opened:
    outcome: OpenOutcome
    status: str  # with `retry` and `busy`: the conversation's status


AcceptOutcome = Literal["accepted", "retry", "taken", "gone"]


class ConversationRecords:
    """The scripts above, for one key prefix."""

    def __init__(
        self, redis: Any, keys: RedisKeys, ttl_s: int | None, *, archive: bool = False
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.archive = archive  # a run's stops go to the history's archive stream too
        self._open = redis.register_script(_OPEN_LUA)
        self._accept = redis.register_script(_ACCEPT_LUA)
        self._finish = redis.register_script(_FINISH_LUA)

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
        keys = [
            k.conversation(thread),
            k.tenant(tenant),
            k.running,
            k.tenant_running(tenant),
            k.tenant_waiting(tenant),
            k.jobs,
            *k.expiring(thread),
        ]
        args = [
            thread,
            conversation_id,
            str(time.time()),
            request_json,
            request_id,
            max_running,
            max_waiting,
            tenant,
            k.status_channel,
        ]
        outcome, status = await self._open(keys=keys, args=args)
        return Opened(outcome.decode(), status.decode())

    async def accept(
        self, tenant: str, thread: str, answered_id: str, answer_id: str, answer_json: str
    ) -> AcceptOutcome:
        """Take an answer to message `answered_id`, once per message across replicas."""
        k = self.keys
        keys = [
            k.conversation(thread),
            k.answered(thread),
            k.pending(thread),
            k.running,
            k.waiting,
            k.tenant_running(tenant),
            k.tenant_waiting(tenant),
            k.jobs,
        ]
        args = [thread, answered_id, answer_id, answer_json, k.status_channel]
        outcome = await self._accept(keys=keys, args=args)
        return outcome.decode()  # type: ignore[no-any-return]

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
        keys = [
            k.fence(thread),
            k.conversation(thread),
            k.running,
            k.waiting,
            k.tenant_running(tenant),
            k.tenant_waiting(tenant),
            k.archive,
            *k.expiring(thread),
        ]
        args: list[Any] = [
            generation,
            thread,
            status,
            str(time.time()),
            self.ttl_s or 0,
            k.status_channel,
            opened,
            view or "",
            (stop or "{}") if self.archive else "",
            *(applied or []),
        ]
        try:
            await self._finish(keys=keys, args=args)
        except ResponseError as exc:
            raise_if_fenced(exc, thread, generation)
            raise

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
        """Threads waiting since before `older_than` (epoch s), oldest first."""
        raw = await self.redis.zrangebyscore(
            self.keys.waiting, "-inf", older_than, start=0, num=limit
        )
        return [t.decode() for t in raw]

    async def oldest_wait(self, tenant: str) -> float | None:
        """Since when the tenant's longest-waiting conversation waits (epoch s)."""
        rows = await self.redis.zrange(self.keys.tenant_waiting(tenant), 0, 0, withscores=True)
        return float(rows[0][1]) if rows else None
