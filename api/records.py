"""The server's record of each conversation in Redis: opening, status, and tenants' load.

Each change is one Lua script (atomic, one round trip), so no crash or race leaves a
conversation half-claimed, counted twice, or without its TTL:

- `open` claims a thread for a `request`, or refuses it: a retry of the same request gets
  `retry` (the original answer), a conversation still running or waiting `busy`, a tenant
  at its cap on running or waiting conversations `limit_running` / `limit_waiting`.
- `mark` moves a thread to `running`, `waiting`, `done` or `failed`: the status field,
  the sets that resume runs at start-up (`srv:running`), expire waits (`srv:waiting`) and
  count each tenant's load, the TTL of a finished conversation's keys (all of them), and a
  notice on `srv:events` for the SSE feeds. An accepted answer is stored in the same step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from api.redis_keys import RedisKeys
from graph.state import Status

# KEYS: conv, tenant index, running, tenant running, tenant waiting, pending, events, index
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
  'request', ARGV[4], 'request_id', ARGV[5], 'status', 'running')
redis.call('HDEL', KEYS[1], 'error')
if new then
  redis.call('HSET', KEYS[1], 'created', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
for i = 6, 8 do
  redis.call('PERSIST', KEYS[i])
end
redis.call('PERSIST', KEYS[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[9], ARGV[1])
if new then return {'new', ''} end
return {'turn', ''}
"""

# KEYS: conv, running, waiting, tenant running, tenant waiting, pending, events, index
# ARGV: thread, status, now, ttl (0: none), channel[, answer id, answer JSON]
_MARK_LUA = """
local thread, status = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- Gone (expired): only make sure nothing counts it any more.
  redis.call('SREM', KEYS[2], thread)
  redis.call('ZREM', KEYS[3], thread)
  redis.call('SREM', KEYS[4], thread)
  redis.call('ZREM', KEYS[5], thread)
  return 0
end
if status == 'running' then
  redis.call('SADD', KEYS[2], thread)
  redis.call('SADD', KEYS[4], thread)
  redis.call('ZREM', KEYS[3], thread)
  redis.call('ZREM', KEYS[5], thread)
  if ARGV[6] then
    redis.call('HSET', KEYS[6], ARGV[6], ARGV[7])
  end
elseif status == 'waiting' then
  redis.call('SREM', KEYS[2], thread)
  redis.call('SREM', KEYS[4], thread)
  redis.call('ZADD', KEYS[3], ARGV[3], thread)
  redis.call('ZADD', KEYS[5], ARGV[3], thread)
else
  redis.call('SREM', KEYS[2], thread)
  redis.call('SREM', KEYS[4], thread)
  redis.call('ZREM', KEYS[3], thread)
  redis.call('ZREM', KEYS[5], thread)
end
redis.call('HSET', KEYS[1], 'status', status)
if (status == 'done' or status == 'failed') and tonumber(ARGV[4]) > 0 then
  for i = 6, 8 do
    redis.call('EXPIRE', KEYS[i], ARGV[4])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
redis.call('PUBLISH', ARGV[5], thread)
return 1
"""

OpenOutcome = Literal["new", "turn", "retry", "busy", "limit_running", "limit_waiting"]


@dataclass(frozen=True)
class Opened:
    outcome: OpenOutcome
    status: str  # with `retry` and `busy`: the conversation's status


class ConversationRecords:
    """The scripts above, for one key prefix."""

    def __init__(self, redis: Any, keys: RedisKeys, ttl_s: int | None) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self._open = redis.register_script(_OPEN_LUA)
        self._mark = redis.register_script(_MARK_LUA)

    def _conversation_keys(self, thread: str) -> list[str]:
        k = self.keys
        return [k.pending(thread), k.events(thread), k.event_index(thread)]

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
            *self._conversation_keys(thread),
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
            k.events_channel,
        ]
        outcome, status = await self._open(keys=keys, args=args)
        return Opened(outcome.decode(), status.decode())

    async def mark(
        self,
        tenant: str,
        thread: str,
        status: Status,
        *,
        answer: tuple[str, str] | None = None,
    ) -> None:
        """Move the conversation to `status` (with an accepted answer to store, if given)."""
        k = self.keys
        keys = [
            k.conversation(thread),
            k.running,
            k.waiting,
            k.tenant_running(tenant),
            k.tenant_waiting(tenant),
            *self._conversation_keys(thread),
        ]
        args: list[Any] = [thread, status, str(time.time()), self.ttl_s or 0, k.events_channel]
        if answer is not None:
            args += list(answer)
        await self._mark(keys=keys, args=args)

    async def record(self, thread: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.conversation(thread))
        return {key.decode(): value.decode() for key, value in raw.items()}

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
