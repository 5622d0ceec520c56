"""The saver's Lua scripts: a checkpoint, and a task's writes, each stored whole.

A checkpoint (payload, versions, blobs, index) and a task's writes are each stored by one
script (EVAL is core Redis: atomic, and replicated to the append-only file as one
transaction), so a crash of the app or of Redis leaves either all of it or none of it. Both
start with the fencing prelude (`graph.storage.fencing`): `KEYS[1]` is the thread's fence
key, `ARGV[1]` the run's generation. Every key of both is one thread's (its hash tag, so
one Redis Cluster slot); the global indexes `P:threads` and `P:r:R` are written outside
them (`graph.storage.base`). Both return the thread key's PTTL: above 0, the conversation
was marked finished, and new activity makes it live on (`RedisSaver.aput`).
"""

from __future__ import annotations

from graph.storage.fencing import FENCE_PRELUDE

__all__ = ["PUT_LUA", "WRITES_LUA"]

# KEYS: fence, cp, meta, blobs, idx, thread[, runs]. ARGV: fence token ("" for none), id,
# payload, meta, ns, run id ("" for none), blobs... Returns {the thread key's PTTL (> 0:
# marked finished), 1 if the thread had no key before (new, or deleted or expired since),
# 1 if the run was new to the thread}: the saver writes the index entries again then.
PUT_LUA = (
    FENCE_PRELUDE
    + """
local new_thread = 1 - redis.call('EXISTS', KEYS[6])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
if #ARGV > 6 then redis.call('HSET', KEYS[4], unpack(ARGV, 7)) end
redis.call('ZADD', KEYS[5], 0, ARGV[2])
redis.call('SADD', KEYS[6], ARGV[5])
local new_run = 0
if #KEYS > 6 then new_run = redis.call('SADD', KEYS[7], ARGV[6]) end
return {redis.call('PTTL', KEYS[6]), new_thread, new_run}
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
