"""Several server processes (replicas) on one real Redis (issue 11).

Each replica is `uvicorn server:app` in its own process, all with the same REDIS_URL and
key prefix, running the crash drill's plan (tests/support/replica_services.py):

    a1 -> b1 -> b2 ----------------\\
    a2 --\\                          +-> z
    a3 ---+-> c1 -> d1 (desktop) --/

The `record` executor appends "<conversation> <event> <todo> <pid>" to a Redis list, so
the test can tell which process ran which ToDo how often; it can pause a ToDo before its
start or hold it between start and end until the test lets it go (or kills the process).
Moments are picked from the record (wait until a line appears), never by sleeping; the
leases are short (CPA_LEASE_S) so that takeovers happen within the safety-net timeouts.

The core tests (takeover, answers, fencing) run twice: on one Redis 7 and on a Redis Cluster
of three primaries with a replica each (`redis_cluster_url`, `redis+cluster://`), the fleet's
parameter. The record is kept on the plain Redis either way (it is the test's, not the
server's), so it survives whatever happens to the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from langchain_core.runnables import RunnableConfig

from graph.builder import build_graph
from graph.config import Settings
from graph.conversations import ConversationNotFoundError, Conversations
from graph.storage.connect import open_checkpointer
from graph.storage.fencing import FENCE
from graph.storage.server_keys import JOB_GROUP, RedisKeys
from lam import LAMMessage
from tests.support.crash_driver import (
    A1,
    B2,
    C1,
    D1,
    DESKTOP,
    DRILL_PLAN,
    RECORD_TODOS,
    REGISTRY,
    REQUEST,
    Z,
)
from tests.support.executors import gate_key
from tests.support.processes import free_port
from tests.support.redis_cluster import sync_client
from tests.support.replica_services import (
    HOLD_ENV,
    PAUSE_ENV,
    RECORD_KEY_ENV,
    RECORD_URL_ENV,
    redis_record_executor,
)
from tests.support.server_harness import (
    ROOT,
    ServerProcess,
    done_for,
    expect_status,
    open_request,
    request_message,
)
from tests.support.services import scripted_services

pytestmark = pytest.mark.slow

TENANT = "fleet"
API_KEY = "fleet-key-0123456789"
ALL_TODOS = (*RECORD_TODOS, D1)
LEASE_S = "1.5"
WAIT_S = 60.0  # a safety net: a healthy run takes a fraction of it


def replica_env(redis_url: str, prefix: str, record_key: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "CPA_REDIS_PREFIX": prefix,
        "CPA_INTENTS_PATH": str(REGISTRY),
        "CPA_TODO_RETRIES": "0",
        "CPA_APPROVAL_POLICY": "never",  # the drill is about replicas, not approvals
        "CPA_SERVER_SERVICES": "tests.support.replica_services:replica_services",
        "CPA_API_KEYS": f"{TENANT}:{API_KEY}",
        "CPA_API_KEYS_FILE": "",
        "CPA_LEASE_S": LEASE_S,
        RECORD_KEY_ENV: record_key,
        RECORD_URL_ENV: redis_url,
        PAUSE_ENV: "",
        HOLD_ENV: "",
        "CPA_LLM_PROVIDER": "",
        "CPA_LLM_BASE_URL": "",
        "OPENAI_BASE_URL": "",
        "CPA_LLM_API_KEY": "",
        "OPENAI_API_KEY": "",
        "CPA_SERVER_URL": "",
        "LANGSMITH_TRACING": "false",
        **extra,
    }


class Fleet:
    """The replicas of one test, their shared environment and the record.

    `redis_url` is the servers' Redis (a cluster's `redis+cluster://` URL too), read here
    through `client`; the record is on `record_url` (by default the same), a plain Redis
    (`record`).
    """

    def __init__(
        self, redis_url: str, prefix: str, directory: Path, record_url: str | None = None
    ) -> None:
        record_url = record_url or redis_url
        self.redis_url = redis_url
        self.record_key = f"{prefix}:test-record"
        self.env = {
            **replica_env(redis_url, prefix, self.record_key),
            RECORD_URL_ENV: record_url,
        }
        self.directory = directory
        self.replicas: list[ServerProcess] = []
        # What the replicas may log as errors (`ServerProcess`'s patterns): a test's own.
        self.expected_errors: tuple[str, ...] = ()
        self.client = sync_client(redis_url)
        self.record = redis.from_url(record_url)

    def launch(self, **extra: str) -> ServerProcess:
        n = len(self.replicas)
        replica = ServerProcess(
            {**self.env, **extra},
            self.directory / f"replica{n}.log",
            expected_errors=self.expected_errors,
        )
        self.replicas.append(replica)
        replica.launch()
        return replica

    def start(self, **extra: str) -> ServerProcess:
        replica = self.launch(**extra)
        replica.wait_ready()
        return replica

    def close(self) -> None:
        for replica in self.replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                os.kill(replica.proc.pid, signal.SIGCONT)  # a stopped one cannot die
            replica.kill()
        self.client.close()
        self.record.close()

    # The record --------------------------------------------------------------------------

    def lines(self) -> list[tuple[str, str, str, int]]:
        out = []
        for raw in self.record.lrange(self.record_key, 0, -1):
            cid, event, todo, pid = (raw.decode() if isinstance(raw, bytes) else raw).split()
            out.append((cid, event, todo, int(pid)))
        return out

    def starts(self, cid: str) -> Counter[str]:
        return Counter(t for c, e, t, _ in self.lines() if c == cid and e == "start")

    async def wait_for(self, wanted: set[tuple[str, str, str]]) -> None:
        """Until every (conversation, event, ToDo) is in the record."""
        deadline = time.monotonic() + WAIT_S
        while True:
            missing = wanted - {(c, e, t) for c, e, t, _ in self.lines()}
            if not missing:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"not recorded within {WAIT_S} s: {sorted(missing)[:5]} ...")
            await asyncio.sleep(0.02)

    def release(self, todo_id: str) -> None:
        self.record.set(gate_key(self.record_key, todo_id), 1)

    # Redis as any process sees it ----------------------------------------------------------

    def generation(self, cid: str) -> int:
        from graph.storage.server_keys import RedisKeys

        raw = self.client.get(RedisKeys(self.env["CPA_REDIS_PREFIX"]).fence(f"{TENANT}/{cid}"))
        return int(raw) if raw is not None else 0

    def event_log(self, cid: str) -> list[dict[str, Any]]:
        from graph.storage.server_keys import RedisKeys

        key = RedisKeys(self.env["CPA_REDIS_PREFIX"]).events(f"{TENANT}/{cid}")
        return [LAMMessage.from_json(raw).to_dict() for raw in self.client.lrange(key, 0, -1)]


STORES = ["redis7", "cluster"]


@pytest.fixture
def fleet(request: pytest.FixtureRequest, redis7_url: str, tmp_path: Path) -> Iterator[Fleet]:
    """Replicas on Redis 7, or on the three-primary cluster where a test is parametrised
    `@pytest.mark.parametrize("fleet", STORES, indirect=True)`."""
    store = getattr(request, "param", "redis7")
    url = redis7_url if store == "redis7" else str(request.getfixturevalue("redis_cluster_url"))
    # After the store's fixture: `redis_prefix` cleans the keys of the URLs set up before it.
    prefix = str(request.getfixturevalue("redis_prefix"))
    crew = Fleet(url, prefix, tmp_path, redis7_url)
    yield crew
    crew.close()


on_each_store = pytest.mark.parametrize("fleet", STORES, indirect=True)


async def read_view(env: Mapping[str, str], cid: str) -> Any:
    """The conversation as its checkpoints hold it, read in this process."""
    settings = Settings.from_env(env)
    services = scripted_services(
        settings,
        plan=DRILL_PLAN,
        executors=[redis_record_executor("", "", frozenset(), frozenset())],
    )
    async with open_checkpointer(settings) as saver:
        conversations = Conversations(build_graph(services, checkpointer=saver), saver)
        return await conversations.view(cid, owner=TENANT)


async def saved_todos(env: Mapping[str, str], cid: str) -> frozenset[str]:
    """The ToDos whose `done` the checkpoints hold: in the plan, or, for steps that run
    inside the `plan` node (streamed plans start the drill's `record` steps there), as the
    node's pending writes, which the view shows as messages before the node has a plan."""
    try:
        view = await read_view(env, cid)
    except ConversationNotFoundError:
        return frozenset()
    in_plan = {t["id"] for t in (view.plan or {}).get("todos", []) if t["status"] == "done"}
    in_log = {m["content"]["todo_id"] for m in view.messages if m["performative"] == "done"}
    return frozenset(in_plan | in_log)


async def wait_saved(fleet: Fleet, cids: list[str]) -> None:
    """Until every ToDo that recorded its end has its result in Redis (then a kill re-runs
    nothing that finished)."""
    deadline = time.monotonic() + WAIT_S
    for cid in cids:
        ended = {t for c, e, t, _ in fleet.lines() if c == cid and e == "end"}
        while not ended <= await saved_todos(fleet.env, cid):
            if time.monotonic() > deadline:
                pytest.fail(f"{cid}: ended ToDos never reached Redis")
            await asyncio.sleep(0.02)


def api(replica: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=replica.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=WAIT_S
    )


async def desktop_assign(client: httpx.AsyncClient, cid: str) -> dict[str, Any]:
    await expect_status(client, cid, "waiting", WAIT_S)
    inbox = (
        await client.get(f"/v1/conversations/{cid}/inbox", params={"receiver": DESKTOP})
    ).json()
    assert [m["content"]["todo"]["id"] for m in inbox] == [D1], inbox
    return dict(inbox[0])


async def answer_desktop(client: httpx.AsyncClient, cid: str) -> dict[str, Any]:
    """The desktop's `done` for the conversation's assign (accepted: 202); its body once
    it is done."""
    assign = await desktop_assign(client, cid)
    answer = await client.post("/v1/lam", json=done_for(assign, "desktop did d1"))
    assert answer.status_code == 202, answer.text
    return await expect_status(client, cid, "done", WAIT_S)


def assert_finished(body: Mapping[str, Any], cid: str) -> None:
    """Done, every ToDo done, and the LAM log has one assign and one done per ToDo."""
    assert body["status"] == "done", body.get("result")
    todos = {t["id"]: t for t in body["plan"]["todos"]}
    assert {i: t["status"] for i, t in todos.items()} == dict.fromkeys(ALL_TODOS, "done")
    assert todos[Z]["output"]["saw"] == [B2, D1]
    messages = body["messages"]
    assert len({m["id"] for m in messages}) == len(messages), "a message twice in the log"
    assigns = Counter(m["content"]["todo"]["id"] for m in messages if m["performative"] == "assign")
    dones = Counter(m["content"]["todo_id"] for m in messages if m["performative"] == "done")
    assert assigns == Counter(ALL_TODOS), assigns
    assert dones == Counter(ALL_TODOS), dones
    assert {m["conversation_id"] for m in messages} == {cid}


def assign_ids(fleet: Fleet, cid: str) -> list[str]:
    return [m["id"] for m in fleet.event_log(cid) if m["performative"] == "assign"]


def assert_assigned_once(fleet: Fleet, cid: str) -> None:
    """What listeners were sent (the event log): each `assign` once, one id per ToDo."""
    log = fleet.event_log(cid)
    assigns = Counter(m["content"]["todo"]["id"] for m in log if m["performative"] == "assign")
    assert assigns == Counter(ALL_TODOS), assigns
    assert len({m["id"] for m in log}) == len(log)


# Takeover ---------------------------------------------------------------------------------------


@on_each_store
async def test_a_killed_replicas_conversations_end_on_the_survivors(fleet: Fleet) -> None:
    # The victim alone takes the batch; each conversation stops before b2 (paused).
    victim = fleet.start(**{PAUSE_ENV: B2})
    async with api(victim) as client:
        cids = [await open_request(client, REQUEST) for _ in range(6)]
    await fleet.wait_for({(c, e, t) for c in cids for e, t in [("pause", B2), ("end", C1)]})
    await wait_saved(fleet, cids)
    before = {cid: fleet.starts(cid) for cid in cids}
    assigned = {
        cid: [m["id"] for m in fleet.event_log(cid) if m["performative"] == "assign"]
        for cid in cids
    }
    survivors = [fleet.start(), fleet.start()]

    victim.kill()  # kill -9, mid-run: every conversation is under way there
    assert victim.proc is None

    async def finish(n: int, cid: str) -> dict[str, Any]:
        async with api(survivors[n % 2]) as client:
            return await answer_desktop(client, cid)

    bodies = await asyncio.gather(*(finish(n, cid) for n, cid in enumerate(cids)))
    survivor_pids = {s.proc.pid for s in survivors if s.proc is not None}
    for cid, body in zip(cids, bodies, strict=True):
        assert_finished(body, cid)
        assert_assigned_once(fleet, cid)
        # Each ToDo ran once in all: what had finished was not run again.
        assert fleet.starts(cid) == Counter(RECORD_TODOS), (cid, before[cid], fleet.starts(cid))
        # b2 and z ran on a survivor; the assigns the victim had sent were not sent again.
        runners = {t: p for c, e, t, p in fleet.lines() if c == cid and e == "start"}
        assert runners[B2] in survivor_pids and runners[Z] in survivor_pids
        assert assign_ids(fleet, cid)[: len(assigned[cid])] == assigned[cid]


@on_each_store
async def test_two_replicas_starting_together_after_a_crash_resume_each_conversation_once(
    fleet: Fleet,
) -> None:
    first = fleet.start(**{PAUSE_ENV: B2})
    async with api(first) as client:
        cids = [await open_request(client, REQUEST) for _ in range(6)]
    await fleet.wait_for({(c, "pause", B2) for c in cids})
    await wait_saved(fleet, cids)
    first.kill()
    generations = {cid: fleet.generation(cid) for cid in cids}

    # Both at once, after the crash (as after a restart of every replica).
    pair = [fleet.launch(), fleet.launch()]
    for replica in pair:
        replica.wait_ready()
    async with api(pair[0]) as client:
        for cid in cids:
            await expect_status(client, cid, "waiting", WAIT_S)  # d1, the desktop's: runs went on

    for cid in cids:
        assert fleet.starts(cid) == Counter({t: 1 for t in RECORD_TODOS if t != Z}), cid
        # One lease taken for each conversation since the crash: one replica resumed it.
        assert fleet.generation(cid) == generations[cid] + 1, cid
    resumers = {p for c, e, t, p in fleet.lines() if e == "start" and t == B2}
    assert resumers <= {r.proc.pid for r in pair if r.proc is not None}


# Answers ----------------------------------------------------------------------------------------


@on_each_store
async def test_two_answers_to_one_wait_on_two_replicas_one_is_accepted(fleet: Fleet) -> None:
    a, b = fleet.start(), fleet.start()
    async with api(a) as on_a, api(b) as on_b:
        cids = [await open_request(on_a, REQUEST) for _ in range(8)]
        for cid in cids:
            assign = await desktop_assign(on_b, cid)
            first, second = done_for(assign, "first"), done_for(assign, "second")
            responses = await asyncio.gather(
                on_a.post("/v1/lam", json=first), on_b.post("/v1/lam", json=second)
            )
            codes = sorted(r.status_code for r in responses)
            assert codes == [202, 409], [r.text for r in responses]
            loser = next(r for r in responses if r.status_code == 409)
            assert loser.json()["error"]["code"] == "already_answered"
            winner = "first" if responses[0].status_code == 202 else "second"
            body = await expect_status(on_a, cid, "done", WAIT_S)
            todos = {t["id"]: t for t in body["plan"]["todos"]}
            assert todos[D1]["output"] == winner  # the accepted one, and only it
            assert_finished(body, cid)
            assert fleet.starts(cid) == Counter(RECORD_TODOS)


@on_each_store
async def test_an_answer_while_another_replica_holds_the_lease_is_queued_not_lost(
    fleet: Fleet,
) -> None:
    from graph.storage.server_keys import RedisKeys

    a, b = fleet.start(), fleet.start()
    async with api(a) as on_a, api(b) as on_b:
        cid = await open_request(on_a, REQUEST)
        assign = await desktop_assign(on_b, cid)
        # Another runner holds the conversation (as while it records where its run stopped).
        lease = RedisKeys(fleet.env["CPA_REDIS_PREFIX"]).lease(f"{TENANT}/{cid}")
        fleet.client.set(lease, "elsewhere 1", px=600_000)

        response = await on_b.post("/v1/lam", json=done_for(assign, "queued"))
        assert response.status_code == 202, response.text
        again = await on_a.post("/v1/lam", json=done_for(assign, "another"))
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "already_answered"
        body = (await on_a.get(f"/v1/conversations/{cid}")).json()
        assert body["status"] == "running"  # accepted, waiting for the lease
        assert {t["id"]: t["status"] for t in body["plan"]["todos"]}[D1] != "done"
        inbox = await on_a.get(f"/v1/conversations/{cid}/inbox", params={"receiver": DESKTOP})
        assert inbox.json() == []  # answered: no longer offered

        fleet.client.delete(lease)  # the holder goes away: a replica takes the job up
        body = await expect_status(on_a, cid, "done", WAIT_S)
    assert_finished(body, cid)
    assert {t["id"]: t for t in body["plan"]["todos"]}[D1]["output"] == "queued"
    assert fleet.starts(cid) == Counter(RECORD_TODOS)


# Fencing ----------------------------------------------------------------------------------------


async def checkpoints_by_generation(env: Mapping[str, str], cid: str) -> list[tuple[str, Any]]:
    """(checkpoint id, the lease generation that wrote it) of the thread, oldest first."""
    settings = Settings.from_env(env)
    async with open_checkpointer(settings) as saver:
        config: RunnableConfig = {"configurable": {"thread_id": f"{TENANT}/{cid}"}}
        found = [(t.checkpoint["id"], t.metadata.get(FENCE)) async for t in saver.alist(config)]
    return sorted(found)


@on_each_store
async def test_a_paused_runner_writes_nothing_after_its_successor_took_over(
    fleet: Fleet,
) -> None:
    paused = fleet.start(**{HOLD_ENV: B2})
    async with api(paused) as client:
        cid = await open_request(client, REQUEST)
    await fleet.wait_for({(cid, "start", B2)})
    await wait_saved(fleet, [cid])
    old = fleet.generation(cid)
    assert paused.proc is not None
    os.kill(paused.proc.pid, signal.SIGSTOP)  # past its lease: it neither renews nor writes

    successor = fleet.start()
    async with api(successor) as client:
        await desktop_assign(client, cid)  # b2 ran again there; the run waits for d1
    new = fleet.generation(cid)
    assert new > old
    # b2 ran inside the successor's `plan` node (streamed plans start the drill's `record`
    # steps there), which has ended since: the checkpoints are the victim's and the
    # successor's, none of a third writer.
    written = await checkpoints_by_generation(fleet.env, cid)
    assert {g for _, g in written} == {str(old), str(new)}
    log_before = fleet.event_log(cid)

    # The paused runner comes back, its b2 free to finish: it finds its lease gone (or its
    # writes refused) and stops.
    fleet.release(B2)
    os.kill(paused.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + WAIT_S
    while "lost its lease" not in paused.log():
        assert time.monotonic() < deadline, paused.log()
        await asyncio.sleep(0.05)

    # Nothing of it reached the checkpoints or the event log.
    assert await checkpoints_by_generation(fleet.env, cid) == written
    assert fleet.event_log(cid) == log_before
    async with api(successor) as client:
        body = await answer_desktop(client, cid)
    assert_finished(body, cid)
    todos = {t["id"]: t for t in body["plan"]["todos"]}
    assert successor.proc is not None
    assert todos[B2]["output"]["pid"] == successor.proc.pid  # the successor's result
    # Every checkpoint since the takeover is the successor's (its generation or a later
    # one: the answer's run took the lease again).
    after = await checkpoints_by_generation(fleet.env, cid)
    assert after[: len(written)] == written
    assert all(int(g) > old for _, g in after[len(written) :]), after


# serve --workers ------------------------------------------------------------------------------


def start_serve(env: Mapping[str, str], port: int, log_path: Path, *args: str) -> ServerProcess:
    """`cpa-planner serve --port P ARGS` in its own session (its workers die with it)."""
    command = [sys.executable, "-m", "cli", "serve", "--port", str(port), *args]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    server = ServerProcess(env, log_path, port)
    server.proc = proc
    return server


def kill_session(session: int) -> None:
    """SIGKILL to the supervisor's session: its workers too (even once the supervisor is gone,
    e.g. killed by `wait_ready` when the start took too long)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGKILL)


@pytest.mark.parametrize("given_by", ["option", "environment"])
async def test_serve_workers_runs_replicas_on_one_port(
    fleet: Fleet, tmp_path: Path, given_by: str
) -> None:
    # One run at a time per worker, and a1 held: the second conversation can only run on
    # the other worker. `--workers 2`, or CPA_WORKERS=2 as a container's command has it.
    env = {**fleet.env, "CPA_RUNS_PER_REPLICA": "1", HOLD_ENV: A1}
    args = ["--workers", "2"] if given_by == "option" else []
    if given_by == "environment":
        env["CPA_WORKERS"] = "2"
    server = start_serve(env, free_port(), tmp_path / "workers.log", *args)
    assert server.proc is not None
    session = server.proc.pid
    try:
        server.wait_ready()  # its start-up bound: workers start together
        async with api(server) as client:
            cids = [await open_request(client, REQUEST) for _ in range(2)]
            await fleet.wait_for({(cid, "start", A1) for cid in cids})
            workers = {p for c, e, t, p in fleet.lines() if e == "start" and t == A1}
            assert len(workers) == 2 and server.proc.pid not in workers, workers
            fleet.release(A1)
            for cid in cids:
                await desktop_assign(client, cid)
                assert fleet.starts(cid) == Counter({t: 1 for t in RECORD_TODOS if t != Z})
        server.proc.terminate()  # the supervisor stops its workers
        assert server.proc.wait(WAIT_S) == 0, server.log()
        # Each worker logs through our handler (uvicorn's log_config), and each ran its
        # lifespan's end (where a replica hands its conversations back).
        log = server.log_path.read_text()
        assert log.count("Application startup complete") == 2, server.log()
        assert log.count("Application shutdown complete") == 2, server.log()
    finally:
        kill_session(session)


async def test_a_replica_stops_taking_jobs_as_soon_as_it_is_told_to_stop(
    fleet: Fleet, tmp_path: Path
) -> None:
    # a1 held: the run goes on. An open event stream ends at the SIGTERM (its listener
    # reconnects elsewhere with Last-Event-ID) instead of being cut with an error in the log
    # when uvicorn's grace period (5 s) runs out.
    env = {**fleet.env, HOLD_ENV: A1}
    server = start_serve(env, free_port(), tmp_path / "stopping.log")
    assert server.proc is not None
    session = server.proc.pid
    keys = RedisKeys(fleet.env["CPA_REDIS_PREFIX"])
    try:
        server.wait_ready()  # its start-up bound: workers start together
        async with api(server) as client:
            request = request_message(REQUEST)
            cid = (await client.post("/v1/lam", json=request)).json()["conversation_id"]
            await fleet.wait_for({(cid, "start", A1)})
            stream = asyncio.create_task(client.get(f"/v1/conversations/{cid}/events"))
            # The same request again, waiting for the run to stop (an idempotent replay).
            waiting = asyncio.create_task(client.post("/v1/lam", params={"wait": 30}, json=request))
            deadline = time.monotonic() + WAIT_S
            while "/events" not in server.log_path.read_text():  # the stream is open
                assert time.monotonic() < deadline, server.log()
                await asyncio.sleep(0.02)
            server.proc.send_signal(signal.SIGTERM)
            # The request that waited is answered as things stand, not cut off later.
            answered = await waiting
            assert answered.status_code == 202 and answered.json()["status"] == "running"
            # Work another replica hands back now: a replica that is stopping leaves it.
            entry = fleet.client.xadd(keys.jobs, {"thread": f"{TENANT}/nobody"})
            # The event stream ended, whole: what the conversation had, then the end.
            streamed = await asyncio.wait_for(stream, WAIT_S)
            assert streamed.status_code == 200 and "data:" in streamed.text, streamed.text
            # uvicorn re-raises the SIGTERM it caught once the server is down.
            assert server.proc.wait(WAIT_S) in (0, -signal.SIGTERM), server.log()
            assert fleet.client.xpending_range(keys.jobs, JOB_GROUP, entry, entry, 1) == []
            assert fleet.client.xrange(keys.jobs, entry, entry) != []
            assert "Application shutdown complete" in server.log_path.read_text()
            server.log_watch.check()  # nothing cut: no "Cancel N running task(s)" error
        # Its own conversation was handed back: a job for it, beside the one left alone.
        jobs = fleet.client.xrange(keys.jobs) or []
        raw = [(fields or {}).get(b"thread", b"") for _, fields in jobs]
        threads = {t.decode() if isinstance(t, bytes) else t for t in raw}
        assert threads == {f"{TENANT}/nobody", f"{TENANT}/{cid}"}, threads
    finally:
        kill_session(session)
