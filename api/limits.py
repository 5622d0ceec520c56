"""Per-tenant limits kept in Redis: requests per minute, and bytes of stored conversations.

Besides the caps on running and waiting conversations (`graph.storage.records`), two limits, each
off unless set, each the same for every replica (they count in the shared Redis):

- `CPA_RATE_LIMIT_PER_MIN`: requests one tenant may make per minute, counted in a fixed
  window per calendar minute (`srv:{tenant:T}:rate:<minute>`, INCR, expiring after it). Beyond, 429
  `rate_limited` with Retry-After = the seconds left in the window. Answers to a waiting
  `propose` or `assign` sent to `POST /v1/lam` are never refused: they let conversations
  finish (every A2A call counts, replies too).
- `CPA_MAX_STORED_BYTES_PER_TENANT`: what one tenant's conversations may keep in Redis.
  Each conversation's size is measured (`MEMORY USAGE` of each of its keys: checkpoints,
  records, event log) where its run stops (`Runs.finish`), and kept per tenant
  (`srv:{tenant:T}:bytes`: thread -> bytes, and `#total`), with when it expires
  (`srv:{tenant:T}:bytes-exp`, a zset, one slot: one script keeps both; a finished
  conversation's TTL, +inf while it waits). A new
  request of a tenant at or over its quota is 429 `storage_quota`, Retry-After = until its
  next conversation expires. What expired is subtracted before each check, in the same
  script. Runs under way are measured when they stop, so a tenant can go over by at most
  what its running conversations (`CPA_MAX_RUNNING_PER_TENANT`) add meanwhile.
"""

from __future__ import annotations

import math
import time
from typing import Any

from api.errors import ApiError
from graph.storage.server_keys import RedisKeys

TOTAL = "#total"  # thread ids always hold a '/': no clash

# KEYS: sizes, expiries. ARGV: now. Drops what expired; returns {total, next expiry or false}.
_USAGE_LUA = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, thread in ipairs(gone) do
  local size = redis.call('HGET', KEYS[1], thread)
  if size then
    redis.call('HINCRBY', KEYS[1], '#total', -tonumber(size))
    redis.call('HDEL', KEYS[1], thread)
  end
  redis.call('ZREM', KEYS[2], thread)
end
local total = tonumber(redis.call('HGET', KEYS[1], '#total') or '0')
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {total, first[2] or false}
"""
# KEYS: sizes, expiries. ARGV: thread, bytes, expires at (a number or +inf).
_RECORD_LUA = """
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], '#total', tonumber(ARGV[2]) - old)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return redis.call('HGET', KEYS[1], '#total')
"""


class TenantLimits:
    """The two limits above for one key prefix (each None: off)."""

    def __init__(
        self,
        redis: Any,
        keys: RedisKeys,
        *,
        rate_per_min: int | None,
        max_stored_bytes: int | None,
        retry_after_s: int,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.rate_per_min = rate_per_min
        self.max_stored_bytes = max_stored_bytes
        self.retry_after_s = retry_after_s
        self._usage = redis.register_script(_USAGE_LUA)
        self._record = redis.register_script(_RECORD_LUA)

    # Rate --------------------------------------------------------------------------------

    async def check_rate(self, tenant: str) -> None:
        if self.rate_per_min is None:
            return
        now = time.time()
        window = int(now // 60)
        key = self.keys.rate(tenant, window)
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 61)
        count, _ = await pipe.execute()
        if int(count) > self.rate_per_min:
            retry = max(1, math.ceil((window + 1) * 60 - now))
            raise ApiError(
                429,
                "rate_limited",
                f"more than {self.rate_per_min} requests this minute "
                "(CPA_RATE_LIMIT_PER_MIN); slow down",
                headers={"Retry-After": str(retry)},
            )

    # Stored bytes ---------------------------------------------------------------------

    def _keys(self, tenant: str) -> list[str]:
        return self.keys.stored_bytes(tenant)

    async def stored(self, tenant: str) -> tuple[int, float | None]:
        """(bytes the tenant's conversations keep, when the next of them expires)."""
        total, first = await self._usage(keys=self._keys(tenant), args=[time.time()])
        expiry = float(first) if first not in (None, False) else None
        return int(total), expiry if expiry is not None and math.isfinite(expiry) else None

    async def check_storage(self, tenant: str) -> None:
        """429 if the tenant keeps as many bytes as its quota or more."""
        if self.max_stored_bytes is None:
            return
        total, next_expiry = await self.stored(tenant)
        if total < self.max_stored_bytes:
            return
        retry = (
            max(1, math.ceil(next_expiry - time.time()))
            if next_expiry is not None
            else self.retry_after_s
        )
        raise ApiError(
            429,
            "storage_quota",
            f"your conversations keep {total} bytes, at or over the quota of "
            f"{self.max_stored_bytes} (CPA_MAX_STORED_BYTES_PER_TENANT); a new request can "
            "start once finished conversations have expired",
            headers={"Retry-After": str(retry)},
        )

    async def record_size(
        self, tenant: str, thread: str, size: int, expires_at: float | None
    ) -> int:
        """Keep a conversation's size (and its expiry, None: never); the tenant's total."""
        until = "+inf" if expires_at is None else repr(expires_at)
        total = await self._record(keys=self._keys(tenant), args=[thread, size, until])
        return int(total)


async def measure(redis: Any, keys: list[str]) -> int:
    """Bytes Redis uses for these keys (`MEMORY USAGE`, every element counted)."""
    if not keys:
        return 0
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
    return sum(int(size or 0) for size in await pipe.execute())
