"""An archiver alone in a process, for the crash test: `python -m tests.support.archiver_child
REDIS_URL PREFIX HISTORY_URL` archives until it is killed (prints `ready` once reading)."""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from api.archiver import Archiver
from graph.history.settings import HistorySettings
from graph.history.store import HistoryStore
from graph.storage.server_keys import RedisKeys


async def main(redis_url: str, prefix: str, history_url: str) -> None:
    client = aioredis.from_url(redis_url)
    store = HistoryStore(history_url)
    await store.check_schema()
    archiver = Archiver(
        client,
        RedisKeys(prefix),
        store,
        HistorySettings(history_url=history_url, history_batch=20),
        "child",
        claim_idle_s=1.0,
    )
    await archiver.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
