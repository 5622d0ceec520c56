"""What the server keeps in Redis, in one home (the checkpoints; the HTTP layer's own keys
are named in `api.redis_keys`).

    fencing.py       the fencing prelude every fenced script starts with, `FencedError`
    errors.py        `RedisUnavailableError`, `REDIS_DOWN` (what waiting out an outage catches)
"""
