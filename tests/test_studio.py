"""LangGraph Studio: `langgraph dev` serves our graph and our HTTP API from langgraph.json.

One real dev server, offline, on a free loopback port, started from the project's own
langgraph.json (graph, Redis checkpointer, `http.app`): through langgraph-sdk a
conversation runs through an approval and a desktop interrupt, is resumed and its history
read; the same process serves our API (auth, lifespan, background runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from langgraph_sdk import get_client

from lam import LAMMessage
from tests.support.processes import free_port, langgraph_working_copy, stop_process
from tests.support.server_harness import ACME_KEY, auth, delete_prefix, request_message, server_env
from tests.support.server_log import expect_in

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory, valkey_url: str) -> Iterator[str]:
    port = free_port()
    workdir = langgraph_working_copy(tmp_path_factory.mktemp("studio"))
    log_path = workdir / "langgraph-dev.log"
    # The state editor's bad plan (below) is refused with a 400, which langgraph-api logs as
    # an error with its traceback; nothing else may be there (the session's log sweep).
    expect_in(log_path, [r"\[error\s*\] Bad Request Error\s+\[langgraph_api\.errors\]"])
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CPA_", "OPENAI_", "OLLAMA_", "LANGSMITH_", "LANGCHAIN_"))
    }
    env.update(
        server_env(valkey_url, log_path.parent),  # keys, test registry, a key prefix
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
        LANGSMITH_TRACING="false",
    )
    langgraph = Path(sys.executable).with_name("langgraph")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(langgraph),
                "dev",
                "--no-browser",
                "--no-reload",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,  # its state (.langgraph_api/) stays out of the source tree
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited:\n{log_path.read_text()[-4000:]}")
            try:
                # Ready: LangGraph's routes and ours (whose lifespan opened Redis).
                studio = httpx.get(f"{url}/ok", timeout=1).status_code == 200
                ours = httpx.get(f"{url}/readyz", headers=auth(ACME_KEY), timeout=1)
                if studio and ours.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        yield url
    finally:
        stop_process(proc, 15)
        delete_prefix(valkey_url, env["CPA_REDIS_PREFIX"])


async def test_studio_runs_a_conversation_through_interrupts(dev_server: str) -> None:
    client = get_client(url=dev_server)
    assistants = await client.assistants.search(graph_id="planner")
    assert assistants, "the planner graph is registered"
    thread = await client.threads.create()
    tid = thread["thread_id"]

    # Settings by name in an assistant's configuration, as Studio edits them.
    assistant = await client.assistants.create(
        graph_id="planner", config={"configurable": {"approval_policy": "always"}}
    )
    planner = assistant["assistant_id"]
    await client.runs.wait(tid, planner, input={"request": "Remind me to call Anna at 9"})
    state = await client.threads.get_state(tid)
    (approval,) = state["interrupts"]
    assert approval["value"]["performative"] == "propose"

    # Resume as a person would in Studio: a plain "agree".
    await client.runs.wait(tid, planner, command={"resume": {approval["id"]: "agree"}})
    state = await client.threads.get_state(tid)
    (desktop,) = state["interrupts"]
    assert desktop["value"]["performative"] == "assign"
    assert desktop["value"]["receiver"] == "cpa-desktop"

    await client.runs.wait(
        tid, planner, command={"resume": {desktop["id"]: {"output": "added at 9:00"}}}
    )
    state = await client.threads.get_state(tid)
    # langgraph-sdk types values as list[dict] | dict (and metadata as dict | None): a graph
    # with a TypedDict state, like ours, gives a dict (and every checkpoint has metadata).
    values = cast(dict[str, Any], state["values"])
    assert values["status"] == "done"
    assert not state["interrupts"]
    kinds = [m["performative"] for m in values["lam"]]
    assert kinds.count("agree") == 1 and kinds[-1] == "inform"
    assert values["messages"][-1]["type"] == "ai"

    history = await client.threads.get_history(tid, limit=100)
    steps: list[Any] = [cast(dict[str, Any], h["metadata"]).get("step") for h in history]
    assert len(history) >= 8 and steps == sorted(steps, reverse=True)
    nexts = {tuple(h["next"]) for h in history}
    assert ("approve",) in nexts and ("execute",) in nexts

    # Studio shows the plan as JSON, and its state editor's plan is validated on the way in.
    plan = values["plan"]
    assert [t["status"] for t in plan["todos"]] == ["done", "done"]
    edited = {**plan, "goal": "Edited in Studio"}
    await client.threads.update_state(tid, {"plan": edited})
    edited_state = await client.threads.get_state(tid)
    assert cast(dict[str, Any], edited_state["values"])["plan"] == edited
    with pytest.raises(httpx.HTTPStatusError):
        await client.threads.update_state(tid, {"plan": {**plan, "todos": [{"id": "t1"}]}})
    after = await client.threads.get_state(tid)
    assert after["checkpoint"] == edited_state["checkpoint"]  # nothing written


def test_one_dev_process_serves_studio_and_our_api(dev_server: str) -> None:
    with httpx.Client(base_url=dev_server, timeout=30) as client:
        # Studio's API (LangGraph's own routes) ...
        assert client.get("/ok").status_code == 200
        assistants = client.post("/assistants/search", json={}).json()
        assert "planner" in {a["graph_id"] for a in assistants}
        # ... and ours, with its auth, lifespan (Redis) and background runs.
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/v1/capabilities").status_code == 401
        offer = client.get("/v1/capabilities", headers=auth(ACME_KEY)).json()
        assert LAMMessage.from_dict(offer).performative.value == "offer"
        response = client.post(
            "/v1/lam",
            params={"wait": 30},
            json=request_message("Take a note: mounted"),
            headers=auth(ACME_KEY),
        )
        assert response.status_code == 202, response.text
        assert response.json()["conversation"]["status"] == "done"
        bad = client.post(
            "/v1/lam", content=b"{", headers={**auth(ACME_KEY), "Content-Type": "application/json"}
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_message"
