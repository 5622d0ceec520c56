"""A real API server for tests: uvicorn in a subprocess, real Redis, scripted models.

`ServerProcess` starts `uvicorn server:app` on a free loopback port with the environment it
is given; `server_services` is the `CPA_SERVER_SERVICES` hook it uses, so the server runs a
small intent registry (`REGISTRY`, tests/data/server_intents.yaml) with no LLM behind it:

    note      "Take a note: ..."      t1 template                       (no desktop ToDo)
    reminder  "Remind me to ..."      t1 template -> t2 desktop
    meeting   "Set up a meeting ..."  t1, t2 desktop in parallel -> t3 desktop (approval)
    chore     "Do the chore ..."      no template: the fixed planner's plan, `work` ToDos

The `work` executor blocks on its first attempt at a ToDo whose inputs say `block_once`
(until the server is killed); it records starts in CPA_TEST_MARKER_DIR, so a test can tell
when a run is under way and how often a ToDo ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from graph.config import Settings
from graph.executor_registry import ExecutorCall
from graph.services import Services
from lam import LAMMessage, MessageFactory
from tests.support.processes import free_port, kill_process, stop_process
from tests.support.redis_cluster import primaries_of
from tests.support.server_log import LogWatch
from tests.support.services import scripted_services

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = "cpa-desktop"

REGISTRY = ROOT / "tests" / "data" / "server_intents.yaml"

CHORE_PLAN = {
    "goal": "Do the chore",
    "todos": [
        {"id": "t1", "title": "Start", "executor": "work", "inputs": {"block_once": True}},
        {"id": "t2", "title": "Finish", "executor": "work", "depends_on": ["t1"]},
    ],
}


class WorkExecutor:
    """Records each start in CPA_TEST_MARKER_DIR; `block_once` ToDos hang on first try."""

    name = "work"
    description = "does a piece of work (test executor)"
    receiver: str | None = None
    effect = "none"  # declared: its plans run without asking, as a harmless step's would

    def __init__(self, marker_dir: Path | None) -> None:
        self.marker_dir = marker_dir

    async def __call__(self, call: ExecutorCall) -> Any:
        first = True
        if self.marker_dir is not None:
            marker = self.marker_dir / f"{call.conversation_id}.{call.todo.id}"
            first = not marker.exists()
            with marker.open("a") as f:
                f.write("start\n")
        if first and call.todo.inputs.get("block_once"):
            await asyncio.sleep(3600)  # until the test kills the server
        return {"did": call.todo.id}


def server_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the test server."""
    marker = os.environ.get("CPA_TEST_MARKER_DIR")
    return scripted_services(
        settings,
        plan=CHORE_PLAN,
        router_intent="other_task",
        executors=[WorkExecutor(Path(marker) if marker else None)],
    )


# An upper bound for a server to start (a safety net, never a measure): on a loaded 2-core
# machine `serve --workers 2` imports everything twice at once, which has taken over 30 s.
STARTUP_S = 180.0

ACME_KEY = "acme-key-0123456789"
GLOBEX_KEY = "globex-key-9876543210"


def server_env(redis_url: str, directory: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: two tenants, the test registry and services."""
    (directory / "markers").mkdir(exist_ok=True)
    return {
        "REDIS_URL": redis_url,
        "CPA_REDIS_PREFIX": f"test-srv-{uuid.uuid4().hex[:10]}",
        "CPA_API_KEYS": f"acme:{ACME_KEY},globex:{GLOBEX_KEY}",
        "CPA_SERVER_SERVICES": "tests.support.server_harness:server_services",
        "CPA_INTENTS_PATH": str(REGISTRY),
        "CPA_TODO_RETRIES": "0",
        "CPA_TEST_MARKER_DIR": str(directory / "markers"),
        "CPA_DATA_DIR": str(directory / "data"),  # the history's SQLite file, the test's own
        "LANGSMITH_TRACING": "false",
        **extra,
    }


def delete_prefix(redis_url: str, prefix: str) -> None:
    # On a cluster, every primary's keys; one key per UNLINK, pipelined: a Cluster (or a
    # node in cluster mode) refuses a DEL of keys of two slots.
    for client in primaries_of(redis_url):
        try:
            pipe = client.pipeline(transaction=False)
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                pipe.unlink(key)
            pipe.execute()
        except redis.exceptions.ConnectionError:
            pass
        finally:
            client.close()


class ServerProcess:
    """`uvicorn server:app` in a subprocess on a loopback port; restartable on that port.

    `cli=True` starts it as a user does, `cpa-planner serve --port P` (`python -m cli`);
    `inherit=False` gives it `env` alone, nothing of this process's environment.
    `stop()` and `kill()` fail the test if the log gained an error or a traceback that is not
    in `expected_errors` (regular expressions, `tests.support.server_log`).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        port: int | None = None,
        *,
        cli: bool = False,
        inherit: bool = True,
        expected_errors: Iterable[str] = (),
    ) -> None:
        self.env = {**os.environ, **env} if inherit else dict(env)
        self.port = port or free_port()
        self.log_path = log_path
        self.log_watch = LogWatch(log_path, expected_errors)
        self.cli = cli
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = STARTUP_S) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (`wait_ready` waits)."""
        if self.cli:
            args = [sys.executable, "-m", "cli", "serve", "--port", str(self.port)]
        else:
            args = [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1"]
            args += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        log.close()

    def wait_ready(self, timeout: float = STARTUP_S) -> None:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log()}")
            try:
                # 503 until the lifespan opened Redis; healthz answers before that.
                if httpx.get(f"{self.url}/v1/capabilities", headers=self.env_auth()).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        kill_process(self.proc)
        self.proc = None
        raise RuntimeError(f"the server did not start in {timeout} s:\n{self.log()}")

    def env_auth(self) -> dict[str, str]:
        keys = self.env.get("CPA_API_KEYS", "")
        if not keys:
            return {}
        first = keys.split(",")[0]
        named = dict(p.split("=", 1) for p in first.split(";") if "=" in p)  # tenant=..;key=..
        return {"Authorization": f"Bearer {named.get('key') or first.split(':', 1)[1]}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_process(self.proc, 15)
        self.proc = None
        self.log_watch.check()

    def kill(self) -> None:
        kill_process(self.proc)
        self.proc = None
        self.log_watch.check()


# Clients ------------------------------------------------------------------------------------


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def request_message(text: str, sender: str = "user", **kwargs: Any) -> dict[str, Any]:
    return MessageFactory(sender).request(text, **kwargs).to_dict()


def done_for(assign: Mapping[str, Any], output: Any) -> dict[str, Any]:
    message = LAMMessage.from_dict(dict(assign))
    return MessageFactory(DESKTOP, message.conversation_id).done(message, output).to_dict()


def agree_to(propose: Mapping[str, Any]) -> dict[str, Any]:
    message = LAMMessage.from_dict(dict(propose))
    return MessageFactory(message.receiver, message.conversation_id).agree(message).to_dict()


def refuse(propose: Mapping[str, Any], reason: str) -> dict[str, Any]:
    message = LAMMessage.from_dict(dict(propose))
    return (
        MessageFactory(message.receiver, message.conversation_id).refuse(message, reason).to_dict()
    )


async def open_conversation(client: httpx.AsyncClient, text: str, **params: Any) -> dict[str, Any]:
    response = await client.post("/v1/lam", json=request_message(text), params=params)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def wait_status(
    client: httpx.AsyncClient, cid: str, statuses: set[str], within: float = 30.0
) -> dict[str, Any]:
    """Poll until the conversation's status is one of `statuses` (a deadline, not an assert)."""
    deadline = time.monotonic() + within
    while True:
        body = (await client.get(f"/v1/conversations/{cid}")).json()
        if body.get("status") in statuses or time.monotonic() > deadline:
            return dict(body)
        await asyncio.sleep(0.05)


async def open_request(client: httpx.AsyncClient, text: str) -> str:
    """Open a conversation with `text` (202 asserted); its id."""
    return str((await open_conversation(client, text))["conversation_id"])


async def expect_status(
    client: httpx.AsyncClient, cid: str, status: str, within: float = 30.0
) -> dict[str, Any]:
    """`wait_status` for one status; the test fails if it is not reached within `within` s."""
    body = await wait_status(client, cid, {status}, within)
    if body.get("status") != status:
        pytest.fail(f"conversation {cid} is not {status} within {within} s: {body}")
    return body


async def approve_until_assigned(
    client: httpx.AsyncClient, cid: str, within: float = 30.0
) -> dict[str, Any]:
    """Agree (as the person asked) to the plan, then return the first `assign` that waits.

    The desktop step of a template changes something, so the plan asks first (issue 10).
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        inbox = (await client.get(f"/v1/conversations/{cid}/inbox")).json()
        for message in inbox:
            if message["performative"] == "assign":
                return dict(message)
            response = await client.post("/v1/lam", json=agree_to(message))
            assert response.status_code == 202, response.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"no assign waited in {cid} within {within} s")


async def sse(
    client: httpx.AsyncClient, cid: str, last_event_id: str | None = None
) -> AsyncIterator[tuple[str, Any]]:
    """Parse the events stream: yields ("message", (id, LAM dict)) and ("comment", text)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    async with client.stream(
        "GET", f"/v1/conversations/{cid}/events", headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id: str | None = None
        data: list[str] = []
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield "message", (event_id, json.loads("\n".join(data)))
                event_id, data = None, []
            elif line.startswith(":"):
                yield "comment", line[1:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())


async def desktop_agent_polling(
    client: httpx.AsyncClient, cid: str, approve: bool = True, within: float = 60.0
) -> dict[str, Any]:
    """The desktop agent that polls: performs each assigned ToDo, approves plans, to the end."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        body = (await client.get(f"/v1/conversations/{cid}")).json()
        if body["status"] in ("done", "failed"):
            return dict(body)
        inbox = (await client.get(f"/v1/conversations/{cid}/inbox")).json()
        for message in inbox:
            if message["performative"] == "assign":
                answer = done_for(message, f"desktop did {message['content']['todo']['id']}")
            else:
                answer = agree_to(message) if approve else refuse(message, "not now")
            response = await client.post("/v1/lam", json=answer)
            assert response.status_code == 202, response.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"conversation {cid} did not finish in {within} s")


async def desktop_agent_sse(
    client: httpx.AsyncClient, cid: str, reconnect_after: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The desktop agent that listens on SSE: answers each `assign` for it as it arrives.

    With `reconnect_after`, it drops the connection after that many events and reconnects
    with Last-Event-ID. Returns every (event id, message) received, in order.
    """
    received: list[tuple[str, dict[str, Any]]] = []
    last: str | None = None
    while True:
        dropped = False
        async for kind, value in sse(client, cid, last):
            if kind != "message":
                continue
            event_id, message = value
            received.append((event_id, message))
            last = event_id
            if message["performative"] == "assign" and message["receiver"] == DESKTOP:
                answer = done_for(message, f"desktop did {message['content']['todo']['id']}")
                response = await client.post("/v1/lam", json=answer)
                assert response.status_code == 202, response.text
            if reconnect_after is not None and len(received) == reconnect_after:
                reconnect_after = None
                dropped = True
                break
        if not dropped:
            return received
