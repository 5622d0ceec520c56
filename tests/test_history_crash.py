"""kill -9 of an archiver mid-archive loses and duplicates nothing (slow: processes).

Two archivers share the archive stream (the consumer group), one of them in a process of its
own. The event log's appends (the server's script) queue 2,400 messages of 120 conversations;
while both archive, the process is killed with SIGKILL, most likely inside a transaction. The
other archiver claims the dead one's pending entries once they are idle and carries on. In
the end, on SQLite and on PostgreSQL, every conversation's archive equals its event log in
Redis: every message once, in the log's order; the stream is empty.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import pytest
import redis.asyncio as aioredis

from api.archiver import Archiver
from graph.history.settings import HistorySettings
from graph.history.store import HistoryStore
from graph.storage.event_log import EventLog
from graph.storage.server_keys import RedisKeys
from tests.support.history_harness import history_url, lam_message, pg_server  # noqa: F401
from tests.support.processes import read_lines_until
from tests.support.server_harness import ROOT

pytestmark = pytest.mark.slow

CONVERSATIONS = 120
MESSAGES = 20


def kill(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()  # SIGKILL
        child.wait(5)


async def test_kill_9_mid_archive_loses_and_duplicates_nothing(
    valkey_url: str,
    redis_prefix: str,
    history_url: str,  # noqa: F811
) -> None:
    client = aioredis.from_url(valkey_url)
    keys = RedisKeys(redis_prefix)
    store = HistoryStore(history_url)
    await store.check_schema()
    log = EventLog(client, keys, archive=True)
    cids = [f"c{i:03d}-{uuid.uuid4().hex[:4]}" for i in range(CONVERSATIONS)]
    # Appends of 1-3 messages, the conversations interleaved, as runs in parallel make them.
    for start in range(0, MESSAGES, 2):
        for cid in cids:
            await log.append(f"acme/{cid}", [lam_message(cid, n) for n in (start, start + 1)])
    assert await client.xlen(keys.archive) == CONVERSATIONS * MESSAGES // 2

    child = subprocess.Popen(  # noqa: ASYNC220  # started once, not awaited on
        [
            sys.executable,
            "-m",
            "tests.support.archiver_child",
            valkey_url,
            redis_prefix,
            history_url,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    survivor: Archiver | None = None
    try:
        assert child.stdout is not None
        lines, ready = read_lines_until(child.stdout, lambda line: "ready" in line, 60)
        assert ready, "\n".join(lines)
        survivor = Archiver(
            client,
            keys,
            store,
            HistorySettings(history_url=history_url, history_batch=20),
            "survivor",
            claim_idle_s=1.0,
        )
        await survivor.start()
        # Kill it once some is stored and much is left: it is in the middle of its work.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = await client.xlen(keys.archive)
            if left < CONVERSATIONS * MESSAGES // 2 * 0.7:
                break
            await asyncio.sleep(0.01)
        kill(child)
        assert await client.xlen(keys.archive) > 0, "everything was archived before the kill"

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not await client.xlen(keys.archive):
                break
            await asyncio.sleep(0.1)
        assert await client.xlen(keys.archive) == 0, "the backlog was not worked off"
    finally:
        kill(child)
        if survivor is not None:
            await survivor.close()

    for cid in cids:
        raw = await client.lrange(keys.events(f"acme/{cid}"), 0, -1)
        in_redis = [json.loads(item) for item in raw]
        assert await store.messages("acme", cid) == in_redis, cid
        assert len(in_redis) == MESSAGES
    pending = await client.xpending(keys.archive, "archivers")
    assert pending["pending"] == 0
    await store.close()
    await client.aclose()
