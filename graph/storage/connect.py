"""The app's checkpointer: Redis at REDIS_URL, or the embedded Valkey without one.

Entry points: `open_checkpointer()` (the app, the CLI, tests) and `checkpointer()` (the
`"checkpointer": {"path": ...}` key of langgraph.json, loaded standalone by the dev server,
hence the absolute imports everywhere in `graph.storage`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from graph.config import ConfigError, Settings
from graph.storage.saver import RedisSaver
from graph.storage.url import check_redis_url

__all__ = ["checkpointer", "open_checkpointer"]


@asynccontextmanager
async def open_checkpointer(settings: Settings | None = None) -> AsyncIterator[RedisSaver]:
    """The app's checkpointer: Redis at REDIS_URL, or the embedded Valkey without one.

    Raises RedisUnavailableError (quickly) when the server does not answer.
    """
    settings = settings or Settings.from_env()
    if settings.redis_url:
        async with _saver_for(settings.redis_url, settings) as saver:
            yield saver
        return
    from graph.storage.embedded import ensure_embedded_redis, release_embedded_redis

    # Starting (or joining) the embedded server touches the disk and waits on a process:
    # off the event loop, which `langgraph dev` watches for blocking calls.
    url = await asyncio.to_thread(ensure_embedded_redis, settings)
    try:
        async with _saver_for(url, settings) as saver:
            yield saver
    finally:
        await asyncio.to_thread(release_embedded_redis, settings)


@asynccontextmanager
async def _saver_for(url: str, settings: Settings) -> AsyncIterator[RedisSaver]:
    try:
        check_redis_url(url)
    except ValueError as exc:  # malformed: a bad setting, not a Redis that cannot be reached
        raise ConfigError(f"bad setting redis_url (CPA_REDIS_URL, REDIS_URL): {exc}") from None
    async with RedisSaver.from_url(
        url,
        prefix=settings.redis_prefix,
        ttl_s=settings.redis_ttl_s,
        write_wait_s=settings.redis_write_wait_s,
    ) as saver:
        yield saver


def checkpointer() -> Any:
    """For langgraph.json: `"checkpointer": {"path": "./graph/storage/connect.py:checkpointer"}`."""
    return open_checkpointer()
