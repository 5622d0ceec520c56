"""The saver's Lua scripts: a checkpoint, and a task's writes, each stored whole.

A checkpoint (payload, versions, blobs, index) and a task's writes are each stored by one
script (EVAL is core Redis: atomic, and replicated to the append-only file as one
transaction), so a crash of the app or of Redis leaves either all of it or none of it. Both
start with the fencing prelude (`graph.storage.fencing`): `KEYS[1]` is the thread's fence
key, `ARGV[1]` the run's generation. Both return the thread key's PTTL: above 0, the
conversation was marked finished, and new activity makes it live on (`RedisSaver.aput`).
"""

from __future__ import annotations

from graph.storage.fencing import FENCE_PRELUDE

__all__ = ["PUT_LUA", "WRITES_LUA"]

# KEYS: fence, cp, meta, blobs, idx, thread, threads[, runs, run]. ARGV: fence token ("" for
# none), id, payload, meta, thread id, ns, run id ("" for none), blobs... Returns the thread
# key's PTTL (> 0: marked finished).
PUT_LUA = (
    FENCE_PRELUDE
    + """
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
if #ARGV > 7 then redis.call('HSET', KEYS[4], unpack(ARGV, 8)) end
redis.call('ZADD', KEYS[5], 0, ARGV[2])
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('SADD', KEYS[7], ARGV[5])
if #KEYS > 7 then
  redis.call('SADD', KEYS[8], ARGV[7])
  redis.call('SADD', KEYS[9], ARGV[5])
end
return redis.call('PTTL', KEYS[6])
"""
)
# KEYS: fence, writes, thread. ARGV: fence token, then (field, frame, replace) triples.
# Returns the thread's PTTL.
WRITES_LUA = (
    FENCE_PRELUDE
    + """
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '1' then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('PTTL', KEYS[3])
"""
)
