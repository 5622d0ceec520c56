"""What goes wrong between the server and Redis, named once.

`RedisUnavailableError` is the saver's one-line report of a Redis that cannot be reached
(its URL never printed with its password). `REDIS_DOWN` is what every caller that waits a
Redis outage out catches: redis-py's errors for a server that is away or does not answer,
and ours. It holds no bare `OSError`: redis-py wraps every socket error of a connection
(`redis.asyncio.connection`) in its own `ConnectionError`, and a run's graph raises
`OSError`s (a tool's file, a builtin `TimeoutError`) that are the run's own failure, not a
Redis outage to wait for.
"""

from __future__ import annotations

from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graph.redaction import redact_text, redact_url

__all__ = ["REDIS_DOWN", "RedisUnavailableError"]


class RedisUnavailableError(ConnectionError):
    """Redis cannot be reached; the message is one line and says what to do."""

    def __init__(self, url: str, cause: BaseException | str) -> None:
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        # The URL may hold credentials, and the cause may quote them (a bad port): neither
        # is ever printed.
        reason = redact_text(reason, url)
        self.url = redact_url(url)
        super().__init__(
            f"Redis at {self.url} is unreachable: {reason}; set REDIS_URL or start Redis"
        )


REDIS_DOWN: tuple[type[Exception], ...] = (
    RedisUnavailableError,
    RedisConnectionError,
    RedisTimeoutError,
    # A Redis Cluster while a slot has no primary (a failover under way): a reply, not a
    # lost connection, but as much an outage to wait out.
    ClusterDownError,
)
"""Redis is away (a restart, a failover, a network blip): wait for it, do not fail."""
