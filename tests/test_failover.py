"""A Redis Cluster primary killed under the server's runs (issue 28).

A cluster of its own (three primaries, one replica each: `tests.support.redis_cluster`),
since the test kills one of its nodes; two server replicas (`uvicorn server:app`) on it
through `redis+cluster://`, running the crash drill's plan with the replica tests' `record`
executor (tests/test_replicas.py: its record is on the plain Redis 7, so the failover cannot
touch what the test counts). Several conversations run; mid-run the primary holding the
job stream's slot (`srv:jobs`), and with it some of the conversations' slots, is killed
(SIGKILL) and its replica promoted. Then every conversation must end once (done), each
`assign` be sent once, every ToDo run, and nothing the killed primary had acknowledged run
again (no write lost by the asynchronous replication), and no ToDo run twice.

That last one takes two settings (docs/replicas.md, "Redis Cluster"): the runs' writes wait
out the failover (CPA_REDIS_WRITE_WAIT_S, 30 s by default: a ToDo's result written while
its slot has no primary is saved once the replica is promoted, instead of stopping the run,
whose ToDos would run again from its last checkpoint), and the lease outlives the failover
(CPA_LEASE_S above it: else another replica takes the conversation over once its job has
been idle a lease long, and runs again what the first run had not saved yet). The replica
tests' 1.5 s lease is shorter than a failover here (3.5-5 s), so this test sets the
default, 10 s.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from graph.storage.server_keys import RedisKeys
from tests.support.crash_driver import B1, RECORD_TODOS, REQUEST, Z
from tests.support.redis_cluster import RedisCluster
from tests.support.replica_services import DELAY_ENV
from tests.support.server_harness import delete_prefix, open_request
from tests.test_replicas import (
    TENANT,
    Fleet,
    answer_desktop,
    api,
    assert_assigned_once,
    assert_finished,
    saved_todos,
)

pytestmark = pytest.mark.slow

CONVERSATIONS = 12
ON_VICTIM = 3  # at least this many conversations in the killed primary's slots
MAX_CONVERSATIONS = 30
TODO_S = "0.5"  # each ToDo's time: runs are under way across the failover (a few seconds)
LEASE_S = "10"  # the default: longer than the failover


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    binary = os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not binary or not shutil.which("redis-cli"):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server and redis-cli are required in CI", pytrace=False)
        pytest.skip("redis-server and redis-cli are needed for a cluster of its own")
    cluster = RedisCluster(binary, tmp_path / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fleet(own_cluster: RedisCluster, redis7_url: str, tmp_path: Path) -> Iterator[Fleet]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    crew = Fleet(own_cluster.url, prefix, tmp_path, redis7_url)
    yield crew
    crew.close()
    delete_prefix(redis7_url, prefix)  # the record; the cluster goes with its fixture


async def test_a_primary_killed_mid_run_every_conversation_ends_once(
    own_cluster: RedisCluster, fleet: Fleet
) -> None:
    fleet.env[DELAY_ENV] = TODO_S
    fleet.env["CPA_LEASE_S"] = LEASE_S
    # No expected errors: the replicas log the failover as warnings ("Redis went away ...;
    # waiting for it", "lost its lease", "subscription lost"), no error, no traceback.
    replicas = [fleet.start(), fleet.start()]
    keys = RedisKeys(fleet.env["CPA_REDIS_PREFIX"])
    victim = own_cluster.primary_of(keys.jobs)

    def on_victim(cid: str) -> bool:
        return own_cluster.primary_of(keys.conversation(f"{TENANT}/{cid}")) is victim

    cids: list[str] = []
    async with api(replicas[0]) as client:
        while len(cids) < CONVERSATIONS or sum(map(on_victim, cids)) < ON_VICTIM:
            assert len(cids) < MAX_CONVERSATIONS, "the conversations' slots avoid one primary"
            cids.append(await open_request(client, REQUEST))
    victims = [cid for cid in cids if on_victim(cid)]

    # Mid-run: the first conversation in the victim's slots has started its second wave.
    await fleet.wait_for({(victims[0], "start", B1)})
    # What the victim's slots hold: acknowledged by the primary, so (replicated) by its
    # replica too, unless an acknowledged write is lost in the failover.
    read = await asyncio.gather(*(saved_todos(fleet.env, cid) for cid in victims))
    saved = dict(zip(victims, read, strict=True))
    mark = len(fleet.lines())
    killed_at = time.monotonic()
    killed, promoted = await asyncio.to_thread(own_cluster.kill_primary_of, keys.jobs)
    promoted_in = time.monotonic() - killed_at
    assert killed.proc is None and own_cluster.primary_of(keys.jobs) is promoted
    # The kill was mid-run: conversations in its slots had ToDos still to run.
    ended = {(c, t) for c, e, t, _ in fleet.lines()[:mark] if e == "end"}
    under_way = [c for c in victims if any((c, t) not in ended for t in RECORD_TODOS if t != Z)]
    assert under_way, "no run of the victim's slots was under way at the kill"

    async def finish(n: int, cid: str) -> dict[str, object]:
        async with api(replicas[n % 2]) as client:
            return await answer_desktop(client, cid)

    bodies = await asyncio.gather(*(finish(n, cid) for n, cid in enumerate(cids)))
    twice = []
    for cid, body in zip(cids, bodies, strict=True):
        # Every conversation ended, once, each assign sent once (the event log), one done
        # per ToDo in the LAM log, and every ToDo ran.
        assert_finished(body, cid)
        assert_assigned_once(fleet, cid)
        starts = fleet.starts(cid)
        assert set(starts) == set(RECORD_TODOS), starts
        # Nothing whose result the slot held at the kill ran again: no acknowledged write
        # was lost with the primary (replication is asynchronous).
        again = {t for c, e, t, _ in fleet.lines()[mark:] if c == cid and e == "start"}
        assert not again & saved.get(cid, frozenset()), (cid, saved.get(cid), again)
        if starts != Counter(RECORD_TODOS):
            # Where each ran: the record's position (vs the kill's) and the process.
            runs = [(n - mark, e, t, p) for n, (c, e, t, p) in enumerate(fleet.lines()) if c == cid]
            twice.append((cid, cid in victims, dict(starts - Counter(RECORD_TODOS)), runs))
    print(
        f"\nfailover: {len(cids)} conversations, {len(victims)} in the killed primary's slots "
        f"(and srv:jobs), {len(under_way)} of them under way at the kill; "
        f"replica promoted {promoted_in:.2f} s after the kill; "
        f"ToDos run twice in {len(twice)} conversations"
        f" ({sum(sum(t[2].values()) for t in twice)} runs again)"
    )
    for replica in replicas:
        replica.stop()  # the logs checked: no error, no traceback
    assert not twice, f"ToDos ran twice: {twice}"
