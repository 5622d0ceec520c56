"""The one Redis-outage retry policy (`graph.storage.outage`): what it retries, and what not.

The outages of a real Redis are the crash drills' (`tests/test_crash.py`: a run that loses
Redis carries on once it is back); here, calls that fail as redis-py fails while Redis is
away, against a real Redis for the PING that ends the wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graph.builder import guarded
from graph.storage.errors import RedisUnavailableError
from graph.storage.outage import retried, retried_within, through_outages
from tests.support.processes import free_port


class Flaky:
    """Fails with each of `failures` in turn, then answers `done`."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.called = asyncio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        self.called.set()
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def test_redis_being_down_is_waited_out_and_each_failure_said() -> None:
    down = [
        RedisConnectionError("Error 111 connecting"),
        RedisTimeoutError("Timeout reading from socket"),
        RedisUnavailableError("redis://127.0.0.1:1/0", "refused"),
    ]
    call = Flaky(*down)
    said: list[BaseException] = []
    assert await retried(call, on_retry=said.append) == "done"
    assert call.calls == 4
    assert said == down


async def test_a_bounded_wait_retries_an_outage_then_gives_up_with_its_error() -> None:
    assert await retried_within(Flaky(RedisConnectionError("refused")), 5.0) == "done"
    # Redis stays away longer than the wait: the last error, once the time is up.
    down = Flaky(*(RedisConnectionError(f"refused {n}") for n in range(100)))
    with pytest.raises(RedisConnectionError, match="refused"):
        await retried_within(down, 0.5)
    assert 2 <= down.calls < 10
    # No wait: one try. What is not an outage: at once.
    once = Flaky(RedisConnectionError("refused"))
    with pytest.raises(RedisConnectionError):
        await retried_within(once, 0)
    assert once.calls == 1
    bug = Flaky(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        await retried_within(bug, 5.0)
    assert bug.calls == 1


async def test_what_is_not_an_outage_fails_at_once() -> None:
    call = Flaky(ValueError("a bug"), OSError("a tool's file"))
    said: list[BaseException] = []
    with pytest.raises(ValueError, match="a bug"):
        await retried(call, on_retry=said.append)
    assert call.calls == 1
    assert said == []
    # Unless the caller names it (a job reader retries whatever its read raised).
    assert await retried(call, retry_on=(Exception,), on_retry=said.append) == "done"
    assert [type(e) for e in said] == [OSError]


async def test_a_cancelled_wait_is_never_retried() -> None:
    call = Flaky(*(RedisConnectionError("down") for _ in range(1000)))
    task = asyncio.create_task(retried(call))
    await call.called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    calls = call.calls
    await asyncio.sleep(0.3)  # longer than the first wait: nothing tries again
    assert call.calls == calls


async def test_through_outages_says_each_outage_once_and_waits_for_a_ping(
    redis_url: str,
) -> None:
    redis = Redis.from_url(redis_url)
    try:
        first, second = RedisConnectionError("gone"), RedisConnectionError("gone again")
        call = Flaky(first, second)
        said: list[BaseException] = []

        async def noted(exc: BaseException) -> None:  # an async note is awaited
            said.append(exc)

        assert await through_outages(call, redis, noted) == "done"
        assert said == [first, second]
        assert call.calls == 3
    finally:
        await redis.aclose()


async def test_a_step_that_finds_redis_away_stops_the_run_instead_of_failing_the_turn() -> None:
    # A step reading Redis while it is away (a restart, a Cluster's failover): the error
    # leaves the step, for the runner to wait out (`through_outages`), instead of being
    # written down as the turn's failure (what `guarded` does with the step's own errors).
    gone = Redis(port=free_port(), socket_connect_timeout=0.5)

    async def reads_redis(state: Any, config: Any) -> dict[str, Any]:
        await gone.get("offers")
        return {}

    try:
        with pytest.raises(RedisConnectionError):
            await guarded("check", reads_redis)({}, {})
    finally:
        await gone.aclose()
