"""MCP servers as tool sources, for real: `mcp-server-time` from PyPI over stdio, and a
server written with the SDK in the tests (`tests/support/mcp_notes_server.py`) over streamable HTTP.

Their tools appear in the catalogue with the effects their annotations give; a scripted
plan calls one through the `mcp:<server>` executor, and its result reaches the step that
depends on it; a destructive tool asks for approval first; a server not on the allow-list
is never reached; a tool that answers with an error fails its step without a retry.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.plan_schema import step_variants
from graph.services import Services
from graph.tools.mcp import McpError, McpServer, call_tool
from tests.support.cli_harness import clean_env, run_cli
from tests.support.planner_harness import Conversation, services
from tests.support.processes import free_port, stop_process
from tests.support.scripted import ScriptedChatModel, steps
from tests.test_docs_examples import BLOCKS, Covered, inventory
from tests.test_docs_examples import commands as block_commands

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
INTENTS = Path(__file__).parent / "data" / "tools_intents.yaml"
TIME_SERVER = f"{sys.executable} -m mcp_server_time --local-timezone Europe/Berlin"
START_S = 60.0  # a bound against a hang, not a speed check


@pytest.fixture(scope="module")
def notes_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The SDK-written server, on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("mcp-notes") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "tests/support/mcp_notes_server.py", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert proc.poll() is None, log.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(proc, 10)


def planner_with(*answers: Any, **settings: Any) -> tuple[Services, ScriptedChatModel]:
    planner = ScriptedChatModel.script(structured=answers)
    svc = services(models={"planner": planner}, intents_path=str(INTENTS), **settings)
    return svc, planner


def call(todo_id: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A ToDo that runs a tool (the planner puts in the tool's executor)."""
    return {"id": todo_id, "title": tool, "tool": {"name": tool, "arguments": arguments}}


def tool_consts(schema: dict[str, Any]) -> list[str]:
    return [v["properties"]["tool"]["const"] for v in step_variants(schema, 1)]


async def test_mcp_server_time_over_stdio_its_result_reaches_the_next_step() -> None:
    plan = steps(
        {
            "goal": "The time in Berlin",
            "todos": [
                call("t1", "time.get_current_time", {"timezone": "Europe/Berlin"}),
                {
                    "id": "t2",
                    "title": "Say it",
                    "executor": "template",
                    "inputs": {"text": "Now: {t1}"},
                    "depends_on": ["t1"],
                },
            ],
        }
    )
    svc, planner = planner_with(plan, mcp_servers={"time": TIME_SERVER})
    catalogue = await svc.tools.catalogue()
    entry = catalogue.tool("time.get_current_time")
    assert entry is not None and entry.source == "mcp:time" and entry.executor == "mcp:time"
    assert entry.call_name == "get_current_time"
    assert entry.tool.effect == "read"  # readOnlyHint
    assert entry.tool.input_schema["required"] == ["timezone"]
    assert catalogue.tool("time.convert_time") is not None

    conv = Conversation(svc)
    state = await conv.start("What time is it in Berlin? Write it down")
    assert "time.get_current_time" in tool_consts(planner.schemas[0])
    assert "- time.get_current_time: Get current time" in planner.calls[0][2][0].text
    # Read-only and text: nothing to approve, it runs to the end.
    assert state["status"] == "done", state["lam"][-3:]
    now, said = state["plan"].todos
    assert now.executor == "mcp:time" and now.output["timezone"] == "Europe/Berlin"
    assert now.output["datetime"][:2] == "20"
    assert said.output.startswith("Now: {") and "Europe/Berlin" in said.output
    (assign, *_) = [m for m in state["lam"] if m["performative"] == "assign"]
    assert assign["receiver"] == "executor:mcp:time"
    assert assign["content"]["tool"] == {
        "name": "get_current_time",
        "arguments": {"timezone": "Europe/Berlin"},
    }


async def test_a_tool_that_answers_an_error_fails_its_step_once() -> None:
    plan = steps(
        {"goal": "g", "todos": [call("t1", "time.get_current_time", {"timezone": "Nowhere/Else"})]}
    )
    svc, _ = planner_with(plan, mcp_servers={"time": TIME_SERVER}, todo_retries=2, max_replans=0)
    state = await Conversation(svc).start("What time is it on Nowhere Else?")
    (todo,) = state["plan"].todos
    assert todo.status == "failed"
    assert todo.error.startswith("tool_error: time.get_current_time: Error executing tool")
    assert "Nowhere/Else" in todo.error and "attempts" not in todo.error  # not retried


async def test_an_sdk_server_over_streamable_http(notes_url: str) -> None:
    # Its result feeds the next call (a reference, resolved); the destructive tool asks.
    plan = steps(
        {
            "goal": "Delete the report note",
            "todos": [
                call("t1", "notes.shout", {"text": "report"}),
                call("t2", "notes.delete_note", {"title": {"$step": "t1"}}),
            ],
        }
    )
    svc, _ = planner_with(
        plan, mcp_servers={"notes": notes_url}, mcp_allowlist=(notes_url,), max_replans=0
    )
    catalogue = await svc.tools.catalogue()
    effects = {e.name: e.tool.effect for e in catalogue.tools}
    assert effects == {
        "notes.shout": "read",
        "notes.add_note": "write",
        "notes.delete_note": "delete",
    }

    conv = Conversation(svc)
    state = await conv.start("Delete the report note")
    assert [t.requires_approval for t in state["plan"].todos] == [False, True]
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose"
    # Streamed plans (docs/streamed-plans.md): the read-only shout starts while the plan is
    # written; the delete, which needs approval, is not assigned before the person agrees.
    early = [m for m in state["lam"] if m["performative"] == "assign"]
    assert [m["content"]["tool"]["name"] for m in early] == ["shout"]
    assert [t.status for t in state["plan"].todos] == ["done", "pending"]
    state = await conv.resume({question.id: "agree"})
    assert state["status"] == "done", state["lam"][-3:]
    shout, delete = state["plan"].todos
    assert shout.output == "REPORT"
    assert delete.output == "deleted REPORT"  # the first call's result, as the argument
    (_, second) = [m for m in state["lam"] if m["performative"] == "assign"]
    assert second["content"]["tool"] == {"name": "delete_note", "arguments": {"title": "REPORT"}}
    # Gone: the same call again is the server's error, the step's failure, not retried.
    again = steps({"goal": "g", "todos": [call("t1", "notes.delete_note", {"title": "REPORT"})]})
    svc, _ = planner_with(
        again, mcp_servers={"notes": notes_url}, mcp_allowlist=(notes_url,), max_replans=0
    )
    conv = Conversation(svc)
    await conv.start("Delete the report note")
    (question,) = await conv.interrupts()
    state = await conv.resume({question.id: "agree"})
    (todo,) = state["plan"].todos
    assert todo.error == "tool_error: notes.delete_note: Error executing tool delete_note"


async def test_a_server_off_the_allow_list_is_never_reached(notes_url: str) -> None:
    svc, _ = planner_with(mcp_servers={"notes": notes_url})  # no CPA_MCP_ALLOWLIST
    assert (await svc.tools.catalogue()).tools == []
    server = McpServer.parse("notes", notes_url)
    with pytest.raises(McpError) as refused:
        await call_tool(server, "shout", {"text": "x"}, (), 10)
    assert refused.value.code == "url_not_allowed" and not refused.value.retryable
    with pytest.raises(McpError) as gone:
        url = f"http://127.0.0.1:{free_port()}/mcp"
        await call_tool(McpServer.parse("gone", url), "shout", {}, (url,), 10)
    assert gone.value.code == "mcp_unreachable" and gone.value.retryable


def test_the_command_line_lists_the_servers_tools(tmp_path: Path, notes_url: str) -> None:
    env = clean_env(
        tmp_path,
        CPA_MCP_SERVERS=f"time={TIME_SERVER},notes={notes_url}",
        CPA_MCP_ALLOWLIST=notes_url,
    )
    run = run_cli(["tools", "--json"], env, timeout=120)
    assert run.returncode == 0, run.stderr
    catalogue = json.loads(run.stdout)
    tools = {t["name"]: t for t in catalogue["tools"]}
    assert tools["time.get_current_time"]["source"] == "mcp:time"
    assert tools["notes.delete_note"]["effect"] == "delete"
    # The servers' executors run their tools only: no free-form steps of their own.
    assert {e["name"] for e in catalogue["executors"]} == {
        "llm",
        "desktop",
        "human",
        "http",
        "template",
    }
    ranked = run_cli(["tools", "--request", "shout it in capitals"], env, timeout=120)
    assert ranked.returncode == 0, ranked.stderr
    assert "notes.shout" in ranked.stdout and "score" in ranked.stdout


def test_the_commands_of_docs_tools_md_run_as_written(tmp_path: Path) -> None:
    # The blocks tests/test_docs_examples.py says this test runs; the page's other shell
    # blocks (TaskBench's, which needs TaskBench's data files) are registered elsewhere.
    this = f"tests/test_mcp.py::{test_the_commands_of_docs_tools_md_run_as_written.__name__}"
    blocks = [b for b in inventory() if BLOCKS.get((b.path, b.key)) == Covered(this)]
    assert all(b.path == "docs/tools.md" and b.lang == "sh" for b in blocks), blocks
    commands = [command for block in blocks for command in block_commands(block.text)]
    assert len(commands) >= 4
    out = {}
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr[-2000:])
        out[command] = done.stdout
    assert "time.get_current_time" in out[commands[2]]
    assert "recall_english" in out[commands[3]]
