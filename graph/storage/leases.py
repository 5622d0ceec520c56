"""Each conversation's run lease in Redis: at most one replica runs a conversation at a time.

A replica that wants to run conversation H takes its lease (`srv:{H}:lease`, `SET` with a
`PX` expiry), renews it while it works, and releases it when nothing is left to do. A
replica that dies stops renewing: the lease expires and another replica takes the
conversation over (`api.runner`). Each acquisition increments the conversation's
generation (the checkpointer's fence key, `graph.storage.base.fence_key`): the runner
passes it with every write (checkpoints, task writes, the event log, the status), and the
scripts refuse a write whose generation is no longer current. So a replica that was paused
past its lease (a stopped VM, a long GC, SIGSTOP) and comes back cannot write over its
successor's work: it gets `FencedError` and stops. A lease that lapsed while nobody took
it (Redis was away longer than the lease) is still its holder's: the generation says
nobody took it since, so renewing takes it again and the run carries on.

What there is to do for a conversation is in Redis, not in the replica: a `request` to
open (the record's `open` field, set by `graph.storage.records`), accepted answers not applied yet
(`srv:pending:H`), and a run a previous holder left unfinished (the record's `holder`
field: set on acquisition, cleared on a clean release). Each script below is atomic, so
work recorded while a runner releases is either seen by that runner ("more") or finds the
lease free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from graph.storage.server_keys import RedisKeys

# KEYS: lease, fence, conv, pending. ARGV: holder name, lease ms, force ("1": take the lease
# even with nothing to do, e.g. to expire a wait).
# -> {outcome, generation, request id to open, answers pending, previous holder died (0/1)}
_ACQUIRE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'busy', '0', '', 0, 0}
end
local open = redis.call('HGET', KEYS[3], 'open') or ''
local answers = redis.call('HLEN', KEYS[4])
local unfinished = redis.call('HEXISTS', KEYS[3], 'holder')
if open == '' and answers == 0 and unfinished == 0 and ARGV[3] ~= '1' then
  return {'idle', '0', '', 0, 0}
end
local generation
if redis.call('EXISTS', KEYS[2]) == 1 then
  generation = redis.call('INCR', KEYS[2])
else
  -- A new (or expired and reused) thread: start from the clock, so generations never repeat.
  local now = redis.call('TIME')
  generation = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('SET', KEYS[2], string.format('%d', generation))
end
generation = string.format('%d', generation)
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. generation, 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'holder', generation)
end
return {'acquired', generation, open, answers, unfinished}
"""

# KEYS: lease, fence. ARGV: lease value, lease ms, generation. -> 1 renewed, 0 lost.
# A lease that lapsed (e.g. Redis was away longer than it) while nobody took it since is
# taken again: taking it increments the generation, so an unchanged one says nobody did.
_RENEW_LUA = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not held and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease, conv, pending, fence. ARGV: lease value, lease ms, how, generation. How:
# "done" (the work is done: release unless more arrived), "drop" (release; nothing of ours
# is left unfinished), "unfinished" (release; the next holder carries on from the
# checkpoint).
# -> {'lost'} | {'more', request id to open, answers pending} | {'released'}
_RELEASE_LUA = """
local held = redis.call('GET', KEYS[1])
if held ~= ARGV[1] and (held or redis.call('GET', KEYS[4]) ~= ARGV[4]) then
  return {'lost', '', 0}  -- another runner's now (a lapsed one nobody took is still ours)
end
if ARGV[3] == 'done' then
  local open = redis.call('HGET', KEYS[2], 'open') or ''
  local answers = redis.call('HLEN', KEYS[3])
  if open ~= '' or answers > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return {'more', open, answers}
  end
end
if ARGV[3] ~= 'unfinished' then
  redis.call('HDEL', KEYS[2], 'holder')
end
redis.call('DEL', KEYS[1])
return {'released', '', 0}
"""

Outcome = Literal["acquired", "busy", "idle"]


class LeaseLostError(RuntimeError):
    """The lease expired and may be another replica's now: stop without writing."""


@dataclass(frozen=True)
class Claim:
    """A held lease and the work found with it."""

    thread: str
    generation: str
    value: str  # what the lease key holds: "<holder> <generation>"
    open: str  # the id of a request to open, or ""
    answers: int  # accepted answers waiting to be applied
    unfinished: bool  # a previous holder stopped mid-work (died, or lost its lease)


@dataclass(frozen=True)
class Acquired:
    outcome: Outcome
    claim: Claim | None = None


class Leases:
    """The scripts above, for one key prefix."""

    def __init__(self, redis: Any, keys: RedisKeys, holder: str, lease_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.holder = holder
        self.lease_ms = max(1, int(lease_s * 1000))
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    async def acquire(self, thread: str, *, force: bool = False) -> Acquired:
        """Take the conversation's lease if it is free and there is work (or `force`)."""
        k = self.keys
        keys = [k.lease(thread), k.fence(thread), k.conversation(thread), k.pending(thread)]
        args = [self.holder, self.lease_ms, "1" if force else "0"]
        outcome, generation, open_id, answers, unfinished = await self._acquire(
            keys=keys, args=args
        )
        outcome = outcome.decode()
        if outcome != "acquired":
            return Acquired(outcome)
        generation = generation.decode()
        claim = Claim(
            thread=thread,
            generation=generation,
            value=f"{self.holder} {generation}",
            open=open_id.decode(),
            answers=int(answers),
            unfinished=bool(unfinished),
        )
        return Acquired("acquired", claim)

    async def renew(self, claim: Claim) -> bool:
        """Extend the lease (or take it again if it lapsed and nobody took it since); False
        if another runner has taken it."""
        keys = [self.keys.lease(claim.thread), self.keys.fence(claim.thread)]
        args = [claim.value, self.lease_ms, claim.generation]
        return bool(await self._renew(keys=keys, args=args))

    async def release(
        self, claim: Claim, how: Literal["done", "drop", "unfinished"] = "done"
    ) -> Claim | None:
        """Give the lease up; with `done`, unless more work arrived: then the claim to carry
        on with (same generation).

        `drop`: give it up whatever is pending (the jobs that queued it will find it).
        `unfinished` (shutting down mid-work): the next holder carries the run on. Raises
        LeaseLostError if the lease was no longer ours.
        """
        k = self.keys
        thread = claim.thread
        keys = [k.lease(thread), k.conversation(thread), k.pending(thread), k.fence(thread)]
        outcome, open_id, answers = await self._release(
            keys=keys, args=[claim.value, self.lease_ms, how, claim.generation]
        )
        outcome = outcome.decode()
        if outcome == "lost":
            raise LeaseLostError(f"conversation {claim.thread}: the lease expired")
        if outcome == "released":
            return None
        return Claim(
            thread=claim.thread,
            generation=claim.generation,
            value=claim.value,
            open=open_id.decode(),
            answers=int(answers),
            unfinished=False,
        )
