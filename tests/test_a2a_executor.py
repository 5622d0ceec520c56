"""The `a2a:<name>` executor against an A2A agent built with the a2a-sdk, in this process.

The agent (`HelperAgent`, served by uvicorn on a free loopback port in a thread) takes the
ToDo as a task and holds it until the test opens its gate. cpa-planner (`cpa-planner
serve`, a subprocess) hands the ToDo over, waits, is killed while the remote task runs, and
a new process notices the task has ended and finishes the conversation: the artifacts are
the ToDo's output, and the agent got the ToDo once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from a2a.helpers.proto_helpers import get_data_parts, new_data_part, new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Message
from starlette.applications import Starlette

from lam import MessageFactory
from tests.support.processes import free_port
from tests.support.server_harness import ACME_KEY, REGISTRY, ServerProcess, auth, delete_prefix

pytestmark = pytest.mark.slow
WAIT_S = 90.0  # safety nets only


class HelperAgent(AgentExecutor):
    """Takes a task, works until the gate opens, then completes with one data artifact."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.received: list[Message] = []
        self.started = threading.Event()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        self.received.append(context.message)
        await event_queue.enqueue_event(new_task_from_user_message(context.message))
        updater = TaskUpdater(event_queue, str(context.task_id), str(context.context_id))
        await updater.start_work()
        self.started.set()
        await asyncio.to_thread(self.gate.wait, WAIT_S)
        [data] = get_data_parts(list(context.message.parts))
        answer = {"answer": "Lisbon", "asked": data["inputs"]["question"]}
        await updater.add_artifact([new_data_part(answer)], name="answer")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


class AgentServer:
    """The helper agent served by uvicorn on a loopback port, in a thread."""

    def __init__(self, agent: HelperAgent, endpoint: str | None = None) -> None:
        self.port = free_port()
        endpoint = endpoint or f"{self.url}/"
        card = AgentCard(
            name="helper",
            description="answers questions (test agent)",
            version="1.0",
            supported_interfaces=[
                AgentInterface(url=endpoint, protocol_binding="JSONRPC", protocol_version="1.0")
            ],
            capabilities=AgentCapabilities(streaming=False),
            default_input_modes=["text/plain"],
            default_output_modes=["application/json"],
            skills=[AgentSkill(id="answer", name="answer", description="answers", tags=["qa"])],
        )
        handler = DefaultRequestHandler(
            agent_executor=agent, task_store=InMemoryTaskStore(), agent_card=card
        )
        app = Starlette(
            routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/")]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AgentServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the agent's server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def helper() -> Iterator[tuple[HelperAgent, AgentServer]]:
    agent = HelperAgent()
    with AgentServer(agent) as server:
        yield agent, server
        agent.gate.set()  # whatever the test did, let the agent's task end


def planner_env(redis_url: str, agent_url: str, allowlist: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "CPA_REDIS_PREFIX": f"test-a2a-x-{uuid.uuid4().hex[:10]}",
        "CPA_API_KEYS": f"acme:{ACME_KEY}",
        "CPA_SERVER_SERVICES": "tests.support.a2a_harness:helper_services",
        "CPA_INTENTS_PATH": str(REGISTRY),
        "CPA_TODO_RETRIES": "0",
        "CPA_A2A_AGENTS": f"helper={agent_url}",
        "CPA_A2A_ALLOWLIST": allowlist,
        "CPA_A2A_READ_ONLY": "helper",
        "CPA_A2A_POLL_S": "0.2",
        "LANGSMITH_TRACING": "false",
    }


def open_chore(server: ServerProcess) -> str:
    request = MessageFactory("user").request("Do the chore")
    response = httpx.post(
        f"{server.url}/v1/lam", json=request.to_dict(), headers=auth(ACME_KEY), timeout=30
    )
    assert response.status_code == 202, response.text
    return str(response.json()["conversation_id"])


def view_until(server: ServerProcess, cid: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        view = httpx.get(
            f"{server.url}/v1/conversations/{cid}", headers=auth(ACME_KEY), timeout=30
        ).json()
        if view["status"] in statuses:
            return dict(view)
        failures = [m["content"] for m in view["messages"] if m["performative"] == "failure"]
        assert view["status"] in ("running", "waiting"), (view["result"], failures)
        assert time.monotonic() < deadline, f"still {view['status']}, not {statuses}"
        time.sleep(0.1)


def chore_ended(env: dict[str, str], redis_url: str, log: Path) -> dict[str, Any]:
    """A planner with `env` runs the chore until it is done or failed; its last view."""
    server = ServerProcess(env, log, cli=True)
    server.start(timeout=120)
    try:
        return view_until(server, open_chore(server), "done", "failed")
    finally:
        server.stop()
        delete_prefix(redis_url, env["CPA_REDIS_PREFIX"])


def test_remote_task_survives_a_planner_restart(
    helper: tuple[HelperAgent, AgentServer], redis7_url: str, tmp_path: Path
) -> None:
    agent, agent_server = helper
    env = planner_env(redis7_url, agent_server.url, agent_server.url)
    server = ServerProcess(env, tmp_path / "server.log", cli=True)
    server.start(timeout=120)
    try:
        cid = open_chore(server)
        assert agent.started.wait(WAIT_S), server.log()
        view_until(server, cid, "waiting")
        inbox = httpx.get(
            f"{server.url}/v1/conversations/{cid}/inbox",
            params={"receiver": "a2a:helper"},
            headers=auth(ACME_KEY),
        ).json()
        [assign] = inbox
        assert assign["metadata"]["a2a_task_id"]
        assert assign["content"]["todo"]["id"] == "t1"

        server.kill()  # the planner dies while the remote task runs
        agent.gate.set()  # ... which ends meanwhile
        server.start(timeout=120)
        view = view_until(server, cid, "done")
    finally:
        server.stop()
        delete_prefix(redis7_url, env["CPA_REDIS_PREFIX"])

    todos = {t["id"]: t for t in view["plan"]["todos"]}
    assert todos["t1"]["status"] == "done"
    [artifact] = todos["t1"]["output"]
    assert artifact["name"] == "answer"
    assert artifact["data"] == [{"answer": "Lisbon", "asked": "capital of Portugal"}]
    assert todos["t2"]["status"] == "done"
    [done] = [
        m
        for m in view["messages"]
        if m["performative"] == "done" and m["in_reply_to"] == assign["id"]
    ]
    assert done["sender"] == "a2a:helper"
    # Handed over once, with the ToDo as data, whatever the restart did.
    [message] = agent.received
    assert message.message_id == assign["id"]


def test_agent_not_on_the_allow_list_fails_the_todo(
    helper: tuple[HelperAgent, AgentServer], redis7_url: str, tmp_path: Path
) -> None:
    agent, agent_server = helper
    env = planner_env(redis7_url, agent_server.url, "http://127.0.0.1:1")
    view = chore_ended(env, redis7_url, tmp_path / "server.log")
    todos = {t["id"]: t for t in view["plan"]["todos"]}
    assert todos["t1"]["status"] == "failed"
    assert "url_not_allowed" in todos["t1"]["error"]
    assert "allow-list" in todos["t1"]["error"]
    assert todos["t2"]["status"] == "skipped"
    assert agent.received == []  # nothing was sent


def test_a_card_naming_an_endpoint_off_the_allow_list_fails_the_todo(
    redis7_url: str, tmp_path: Path
) -> None:
    """The card is read from an allowed URL, but would send the ToDo elsewhere: refused."""
    agent = HelperAgent()
    elsewhere = f"http://127.0.0.1:{free_port()}/"
    with AgentServer(agent, endpoint=elsewhere) as agent_server:
        env = planner_env(redis7_url, agent_server.url, agent_server.url)
        try:
            view = chore_ended(env, redis7_url, tmp_path / "server.log")
        finally:
            agent.gate.set()
    todos = {t["id"]: t for t in view["plan"]["todos"]}
    assert todos["t1"]["status"] == "failed"
    assert "names no endpoint on the allow-list" in todos["t1"]["error"]
    assert elsewhere.rstrip("/") in todos["t1"]["error"]
    assert agent.received == []
