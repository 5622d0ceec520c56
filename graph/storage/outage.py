"""Waiting out a Redis outage: one retry policy, on tenacity, for every loop that does.

Redis goes away now and then (a restart, a failover, a network blip: `REDIS_DOWN`). What the
server was doing then is not failed: it is tried again once Redis is back. Every loop of the
server that waits an outage out does it with this policy: a first wait of 0.2 s, doubled
after each failed try up to 5 s; no give-up (the outage ends, or the process is stopped and
the task cancelled: a cancellation is never retried). Only what a caller names is retried
(`REDIS_DOWN` unless it says otherwise: a job reader retries whatever its read raised), and
the caller says what an outage is worth a log line for (`on_retry`, before each wait).

    outage_retrying(...)        a fresh tenacity `AsyncRetrying` with the policy
    retried(call, ...)          `call()` under the policy, typed: `await retried(read)`
    until_redis_answers(redis)  waits until Redis answers a PING, with the policy
    retried_within(call, seconds)
                                `call()` under the policy for at most `seconds` (a
                                write that waits out a short outage: a failover), then
                                its last error
    through_outages(call, redis, on_outage)
                                `call()` until it no longer fails for Redis being down;
                                after each such failure, `on_outage(exc)`, then
                                `until_redis_answers` (so a long run that fails late starts
                                its waiting afresh at 0.2 s)

A fresh `AsyncRetrying` per call: one keeps the state of the call it makes, so two tasks
must not share one.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_before_delay,
    stop_never,
    wait_exponential,
)
from tenacity.stop import StopBaseT

from graph.storage.errors import REDIS_DOWN

__all__ = [
    "FIRST_WAIT_S",
    "MAX_WAIT_S",
    "outage_retrying",
    "retried",
    "retried_within",
    "through_outages",
    "until_redis_answers",
]

T = TypeVar("T")
FIRST_WAIT_S = 0.2
MAX_WAIT_S = 5.0
OnRetry = Callable[[BaseException], Awaitable[None] | None]


def outage_retrying(
    *,
    on_retry: OnRetry | None = None,
    retry_on: tuple[type[BaseException], ...] = REDIS_DOWN,
    stop: StopBaseT = stop_never,
) -> AsyncRetrying:
    """The policy: retry on `retry_on`, after `on_retry(exc)`, waiting 0.2 s doubling to 5 s;
    until `stop` says so (never, unless a caller bounds it)."""
    return AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=wait_exponential(multiplier=FIRST_WAIT_S, min=FIRST_WAIT_S, max=MAX_WAIT_S),
        stop=stop,
        before_sleep=_before_sleep(on_retry),
        reraise=True,
    )


async def retried(
    call: Callable[[], Awaitable[T]],
    *,
    on_retry: OnRetry | None = None,
    retry_on: tuple[type[BaseException], ...] = REDIS_DOWN,
) -> T:
    """`call()` under the policy (`outage_retrying`); what it returns, once it does."""
    result: T = await outage_retrying(on_retry=on_retry, retry_on=retry_on)(_awaited(call))
    return result


async def retried_within(call: Callable[[], Awaitable[T]], seconds: float) -> T:
    """`call()` under the policy while it fails for Redis being down, for at most `seconds`
    (0: once); then the last error. No try starts after `seconds`: it ends in time."""
    if seconds <= 0:
        return await call()
    retrying = outage_retrying(stop=stop_before_delay(seconds))
    result: T = await retrying(_awaited(call))
    return result


async def until_redis_answers(redis: Any) -> None:
    """Until Redis answers a PING (quietly: the caller said that it went away)."""
    await retried(redis.ping)


async def through_outages(call: Callable[[], Awaitable[T]], redis: Any, on_outage: OnRetry) -> T:
    """`call()` until it does not fail for Redis being down; after each such failure,
    `on_outage(exc)` and a wait until Redis answers (`until_redis_answers`)."""

    async def outage(exc: BaseException) -> None:
        said = on_outage(exc)
        if inspect.isawaitable(said):
            await said
        await until_redis_answers(redis)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(REDIS_DOWN), before_sleep=_before_sleep(outage), reraise=True
    )
    result: T = await retrying(_awaited(call))
    return result


def _awaited(call: Callable[[], Awaitable[T]]) -> Callable[[], Coroutine[Any, Any, T]]:
    """`call` as a coroutine function: tenacity awaits only what one returns (a lambda's
    awaitable, or redis-py's `ping`, would come back unawaited)."""

    async def attempt() -> T:
        return await call()

    return attempt


def _before_sleep(on_retry: OnRetry | None) -> Callable[[RetryCallState], Awaitable[None]]:
    async def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and exc is not None:
            said = on_retry(exc)
            if inspect.isawaitable(said):
                await said

    return before_sleep
