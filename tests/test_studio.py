"""LangGraph Studio: `langgraph dev` serves our graph from langgraph.json, offline.

Starts the real dev server on a free loopback port and, through langgraph-sdk, runs a
conversation through an approval interrupt and a desktop interrupt, resumes both, then
reads the thread's state history.
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

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory, valkey_url: str) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("studio") / "langgraph-dev.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CPA_", "OPENAI_", "OLLAMA_", "LANGSMITH_", "LANGCHAIN_"))
    }
    env.update(
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
        LANGSMITH_TRACING="false",
        CPA_APPROVAL_POLICY="always",
        REDIS_URL=valkey_url,
        CPA_REDIS_PREFIX=f"studio-test-{port}",
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
            cwd=ROOT,
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
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_studio_runs_a_conversation_through_interrupts(dev_server: str) -> None:
    client = get_client(url=dev_server)
    assistants = await client.assistants.search(graph_id="planner")
    assert assistants, "the planner graph is registered"
    thread = await client.threads.create()
    tid = thread["thread_id"]

    await client.runs.wait(tid, "planner", input={"request": "Remind me to call Anna at 9"})
    state = await client.threads.get_state(tid)
    (approval,) = state["interrupts"]
    assert approval["value"]["performative"] == "propose"

    # Resume as a person would in Studio: a plain "agree".
    await client.runs.wait(tid, "planner", command={"resume": {approval["id"]: "agree"}})
    state = await client.threads.get_state(tid)
    (desktop,) = state["interrupts"]
    assert desktop["value"]["performative"] == "assign"
    assert desktop["value"]["receiver"] == "cpa-desktop"

    await client.runs.wait(
        tid, "planner", command={"resume": {desktop["id"]: {"output": "added at 9:00"}}}
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
