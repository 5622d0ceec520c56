"""examples/desktop_agent.py against a real `cpa-planner serve` (real Redis, no LLM).

The request is the README's: "Schedule a meeting with Anna tomorrow at 10", the default
registry's calendar template (t1 check availability, desktop -> t2 create the event,
desktop, approval first). The person agrees over HTTP; the example agent does both ToDos.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.desktop_agent import DesktopAgent, TodoFailed, client_for
from graph.intents import default_registry
from lam import MessageFactory, ToDo
from tests.support.cli_harness import clean_env, ctrl_c_reaches_it
from tests.support.server_harness import ServerProcess, delete_prefix

ROOT = Path(__file__).resolve().parents[1]
MEETING = "Schedule a meeting with Anna tomorrow at 10"
KEY = "example-key-123"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, valkey_url: str) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("example")
    prefix = f"test-example-{int(time.time() * 1000)}"
    env = clean_env(
        directory, REDIS_URL=valkey_url, CPA_REDIS_PREFIX=prefix, CPA_API_KEYS=f"me:{KEY}"
    )
    process = ServerProcess(env, directory / "serve.log", cli=True, inherit=False)
    process.start()
    try:
        yield process.url
    finally:
        process.stop()
        delete_prefix(valkey_url, prefix)


def open_meeting(client: httpx.Client) -> str:
    request = MessageFactory("user").request(MEETING).to_dict()
    opened = client.post("/v1/lam", params={"wait": 30}, json=request).json()
    assert opened["status"] == "waiting", opened  # for the person's approval
    return str(opened["conversation_id"])


def agree(client: httpx.Client, cid: str) -> None:
    (propose,) = client.get(f"/v1/conversations/{cid}/inbox", params={"receiver": "user"}).json()
    body = {
        "lam_version": "1.0",
        "performative": "agree",
        "sender": "user",
        "receiver": propose["sender"],
        "conversation_id": cid,
        "in_reply_to": propose["id"],
        "content": {},
    }
    assert client.post("/v1/lam", json=body).status_code == 202


def todos(client: httpx.Client, cid: str) -> dict[str, dict[str, Any]]:
    plan = client.get(f"/v1/conversations/{cid}").json()["plan"]
    return {t["id"]: t for t in plan["todos"]}


def readme_command() -> str:
    """The README's command that starts the example, as written (a code span)."""
    readme = (ROOT / "README.md").read_text()
    (command,) = re.findall(r"`([^`]*examples/desktop_agent\.py --[^`]*)`", readme)
    assert command.startswith(".venv/bin/python "), command  # the virtualenv has httpx
    return str(command)


def test_the_example_does_the_desktop_todos_of_one_conversation(server: str) -> None:
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {KEY}"}) as client:
        cid = open_meeting(client)
        # As the README says, in a shell where CPA and KEY are set, from the clone's root.
        agent = subprocess.Popen(
            ["bash", "-c", f"exec {readme_command()}"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "CPA": server, "KEY": KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=ctrl_c_reaches_it,  # stopped with Ctrl-C below
        )
        try:
            agree(client, cid)
            deadline = time.monotonic() + 120  # a bound against a hang, not a speed check
            while client.get(f"/v1/conversations/{cid}").json()["status"] != "done":
                assert time.monotonic() < deadline and agent.poll() is None, agent.stderr
                time.sleep(0.1)
            agent.send_signal(signal.SIGINT)  # it follows every conversation until Ctrl-C
            out, err = agent.communicate(timeout=30)
        finally:
            agent.kill()
        assert agent.returncode == 130, err
        # One line per desktop ToDo, as the packaged calendar template words it.
        template = default_registry().template_for(
            "calendar", MEETING, language="en", read_only=False
        )
        assert template is not None
        assert out.splitlines() == [
            f"[{t.id}] {t.title}: {t.description}" for t in template.plan.todos
        ]
        body = client.get(f"/v1/conversations/{cid}").json()
        assert body["status"] == "done"
        assert todos(client, cid)["t2"]["output"] is None  # it has nothing to report
        # Each step once "done", never "done: done: ..." (its output used to say "done").
        assert "- Create the calendar event: done\n" in body["result"]["text"] + "\n"
        assert "done: done" not in body["result"]["text"]
        done = [m for m in body["messages"] if m["performative"] == "done"]
        assert [m["sender"] for m in done] == ["cpa-desktop", "cpa-desktop"]


async def test_a_handler_of_our_own_across_the_tenants_conversations(server: str) -> None:
    seen: list[tuple[str, Any]] = []

    def calendar_app(todo: ToDo, inputs: dict[str, Any]) -> Any:
        seen.append((todo.id, inputs.get("dependencies")))
        if todo.id == "t2":
            raise TodoFailed("app_not_installed", "the calendar app is not installed")
        return "Anna is free 10:00-11:00"

    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {KEY}"}) as client:
        async with client_for(server, KEY) as async_client:
            agent = asyncio.create_task(DesktopAgent(async_client, calendar_app).run())
            cid = await asyncio.to_thread(open_meeting, client)  # found by listing
            await asyncio.to_thread(agree, client, cid)
            deadline = time.monotonic() + 60  # a bound against a hang, not a speed check
            while (await async_client.get(f"/v1/conversations/{cid}")).json()["status"] != "failed":
                assert time.monotonic() < deadline and not agent.done()
                await asyncio.sleep(0.1)
            agent.cancel()
            body = (await async_client.get(f"/v1/conversations/{cid}")).json()
    assert seen == [("t1", {}), ("t2", {"t1": "Anna is free 10:00-11:00"})]
    steps = {t["id"]: t for t in body["plan"]["todos"]}
    assert steps["t1"]["status"] == "done"
    assert steps["t2"]["status"] == "failed"
    assert steps["t2"]["error"].startswith("app_not_installed: the calendar app")
    (failure,) = [m for m in body["messages"] if m["performative"] == "failure"]
    assert failure["content"]["todo_id"] == "t2" and failure["sender"] == "cpa-desktop"
