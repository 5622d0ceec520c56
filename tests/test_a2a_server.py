"""The A2A server, driven by the official a2a-sdk client against a running `cpa-planner serve`.

Card, a compound request through `message/send` (A2A 1.0 `SendMessage`) to input-required
with the plan, a reply that is no decision (refused, nothing lost), the approval streamed
(`SendStreamingMessage`) to completed, `tasks/get`; the A2A 0.3 method names
(`message/send`, `tasks/get`, `tasks/cancel`) through the SDK's 0.3 transport; tenants and
keys as for the LAM API.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from a2a.client import (
    A2ACardResolver,
    Client,
    ClientConfig,
    ClientFactory,
    create_client,
)
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    InvalidParamsError,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, VERSION_HEADER

from tests.support.a2a_harness import COMPOUND
from tests.support.cli_harness import ROOT, clean_env
from tests.support.server_harness import ACME_KEY, GLOBEX_KEY, ServerProcess, auth, delete_prefix

pytestmark = pytest.mark.slow


@pytest.fixture
def server(redis7_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    prefix = f"test-a2a-{uuid.uuid4().hex[:10]}"
    env = {
        "REDIS_URL": redis7_url,
        "CPA_REDIS_PREFIX": prefix,
        "CPA_API_KEYS": f"acme:{ACME_KEY},globex:{GLOBEX_KEY}",
        "CPA_SERVER_SERVICES": "tests.support.a2a_harness:a2a_services",
        "CPA_TODO_RETRIES": "0",
        "LANGSMITH_TRACING": "false",
    }
    proc = ServerProcess(env, tmp_path / "server.log", cli=True)
    proc.start(timeout=120)  # a safety net: the machine is shared
    try:
        yield proc
    finally:
        proc.stop()
        delete_prefix(redis7_url, prefix)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # A client given its own httpx client sends the protocol version only if told to.
    headers = {**auth(ACME_KEY), VERSION_HEADER: PROTOCOL_VERSION_CURRENT}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        yield client


async def client_for(server: ServerProcess, http: httpx.AsyncClient, *, streaming: bool) -> Client:
    return await create_client(server.url, ClientConfig(httpx_client=http, streaming=streaming))


def user_message(text: str, **ids: str) -> Message:
    return Message(
        role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)], **ids
    )


async def send(client: Client, message: Message) -> list[StreamResponse]:
    request = SendMessageRequest(message=message, configuration=SendMessageConfiguration())
    return [event async for event in client.send_message(request)]


def last_task(events: list[StreamResponse]) -> Task:
    tasks = [e.task for e in events if e.HasField("task")]
    assert tasks, events
    return tasks[-1]


async def test_card_lists_intents_as_skills(server: ServerProcess, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{server.url}/.well-known/agent-card.json")
    assert response.status_code == 200
    card = response.json()
    skills = {s["id"]: s for s in card["skills"]}
    assert {"calendar", "email", "reminder", "files"} <= set(skills)
    assert skills["calendar"]["examples"], "the registry's example utterances"
    urls = {(i["protocolVersion"], i["url"]) for i in card["supportedInterfaces"]}
    assert urls == {("1.0", f"{server.url}/a2a"), ("0.3", f"{server.url}/a2a")}
    assert "bearer" in card["securitySchemes"]
    # Same auth as the LAM API: no key, no card and no JSON-RPC.
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(f"{server.url}/.well-known/agent-card.json")).status_code == 401
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x/y"}}
        assert (await anonymous.post(f"{server.url}/a2a", json=rpc)).status_code == 401


async def test_compound_request_approved_and_streamed_to_completed(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    sender = await client_for(server, http, streaming=False)
    task = last_task(await send(sender, user_message(COMPOUND)))
    assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, [
        get_text_parts(list(m.parts)) for m in task.history
    ]
    cid = task.context_id
    assert task.id.startswith(f"{cid}/")
    # The plan waits for approval: it is the status message's data part.
    [data] = get_data_parts(list(task.status.message.parts))
    assert [t["id"] for t in data["plan"]["todos"]] == ["t1", "t2", "t3"]
    assert data["plan"]["todos"][1]["requires_approval"] is True
    # The LAM API sees the same conversation, waiting for the same proposal.
    view = (await http.get(f"{server.url}/v1/conversations/{cid}")).json()
    assert view["status"] == "waiting"
    assert data["propose_id"] in {m["id"] for m in view["messages"]}

    # A reply that is no decision is refused; the task still waits, nothing answered.
    with pytest.raises(InvalidParamsError, match="reply 'yes'"):
        await send(sender, user_message("maybe later", task_id=task.id, context_id=cid))
    again = await sender.get_task(GetTaskRequest(id=task.id))
    assert again.status.state == TaskState.TASK_STATE_INPUT_REQUIRED

    streamer = await client_for(server, http, streaming=True)
    events = await send(streamer, user_message("yes", task_id=task.id, context_id=cid))
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert states[-1] == TaskState.TASK_STATE_COMPLETED, events
    assert TaskState.TASK_STATE_WORKING in states
    # Each ToDo's `done` came by as a working update, in the order they finished. t1 only
    # reads: with streamed plans (the default) it ran while the plan was being written,
    # before anyone approved; the steps the approval held come after the "yes".
    done = [
        data["lam"]["content"]["todo_id"]
        for e in events
        if e.HasField("status_update")
        for data in get_data_parts(list(e.status_update.status.message.parts))
        if isinstance(data, dict) and data.get("lam", {}).get("performative") == "done"
    ]
    assert done in (["t1", "t2", "t3"], ["t2", "t3"])
    artifacts = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    assert artifacts and get_data_parts(list(artifacts[0].parts))

    final = await sender.get_task(GetTaskRequest(id=task.id))
    assert final.status.state == TaskState.TASK_STATE_COMPLETED
    [result] = [d for d in get_data_parts(list(final.artifacts[0].parts))]
    assert result["result"]
    history = [m.message_id for m in final.history]
    assert len(history) == len(set(history)) and len(history) >= 5
    view = (await http.get(f"{server.url}/v1/conversations/{cid}")).json()
    assert view["status"] == "done"
    assert {"agree"} <= {m["performative"] for m in view["messages"]}
    finished = [m["content"]["todo_id"] for m in view["messages"] if m["performative"] == "done"]
    assert sorted(finished) == ["t1", "t2", "t3"]

    # Another tenant does not see the task.
    async with httpx.AsyncClient(headers=auth(GLOBEX_KEY), timeout=30) as other:
        other.headers[VERSION_HEADER] = PROTOCOL_VERSION_CURRENT
        stranger = await client_for(server, other, streaming=False)
        with pytest.raises(TaskNotFoundError):
            await stranger.get_task(GetTaskRequest(id=task.id))


async def test_a2a_0_3_method_names(server: ServerProcess, http: httpx.AsyncClient) -> None:
    """`message/send`, `tasks/get`, `tasks/cancel`: the SDK's 0.3 transport, on our card."""
    del http.headers[VERSION_HEADER]
    card = await A2ACardResolver(http, server.url).get_agent_card()
    legacy = [i for i in card.supported_interfaces if i.protocol_version == "0.3"]
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(legacy)
    client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)

    task = last_task(await send(client, user_message(COMPOUND)))
    assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    got = await client.get_task(GetTaskRequest(id=task.id))
    assert got.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert "Approve" in " ".join(get_text_parts(list(got.status.message.parts)))
    cancelled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    view = (await http.get(f"{server.url}/v1/conversations/{task.context_id}")).json()
    assert view["status"] == "failed"
    assert view["result"]["error"]["code"] == "canceled"
    again = await client.get_task(GetTaskRequest(id=task.id))
    assert again.status.state == TaskState.TASK_STATE_CANCELED
    # A finished task cannot be cancelled again: an error, and nothing changes.
    with pytest.raises(TaskNotCancelableError):
        await client.cancel_task(CancelTaskRequest(id=task.id))


def documented_client(url: str, key: str) -> str:
    """docs/a2a.md's client, verbatim but for the server's URL and key."""
    page = (ROOT / "docs" / "a2a.md").read_text()
    section = page[page.index("\n## A client, in Python\n") :]
    block = section[section.index("```python\n") + len("```python\n") :]
    code = block[: block.index("```\n")]
    line = re.search(r'^URL, KEY = "http://127.0.0.1:8000", "<key>".*$', code, re.M)
    assert line, code
    return code.replace(line.group(0), f'URL, KEY = "{url}", "{key}"')


def run_client(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "client.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_documented_client_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    done = run_client(documented_client(server.url, ACME_KEY), tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("[TASK_STATE_INPUT_REQUIRED] Plan: Meet Anna"), text
    states = re.findall(r"^\[(TASK_STATE_\w+)\]", text, re.M)
    assert states[0] == "TASK_STATE_INPUT_REQUIRED" and states[-1] == "TASK_STATE_COMPLETED"
    assert "TASK_STATE_WORKING" in states  # each step as it happens
    # Readable news, not the protocol's messages dumped (a hundred lines each).
    assert "status_update {" not in text and "message_id" not in text, text
    assert len(text.splitlines()) < 40, text


def test_the_documented_client_says_why_without_an_llm(redis7_url: str, tmp_path: Path) -> None:
    """The request needs the LLM planner; a server without an LLM fails the task at once,
    and the client prints why instead of a traceback (nothing waits for a reply)."""
    prefix = f"test-a2a-{uuid.uuid4().hex[:10]}"
    env = clean_env(tmp_path, REDIS_URL=redis7_url, CPA_REDIS_PREFIX=prefix)
    proc = ServerProcess(env, tmp_path / "server.log", cli=True, inherit=False)
    proc.start(timeout=120)
    try:
        done = run_client(documented_client(proc.url, ""), tmp_path)
    finally:
        proc.stop()  # and its log holds no error
        delete_prefix(redis7_url, prefix)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("[TASK_STATE_FAILED] Sorry, I could not do that: No LLM is configured")
    assert "Traceback" not in done.stderr
