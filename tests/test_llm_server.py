"""cpa-planner against a real LLM server: llama.cpp's llama-server with SmolLM2-135M-Instruct.

Run with `make test-llm` (it installs the server first); `make test` runs them where the
server is installed and skips them, saying what to install, where it is not. The settings
are the README's for an OpenAI-compatible server and nothing else (CPA_LLM_BASE_URL,
CPA_LLM_MODEL): the defaults are what is tested.

A 135M model writes poor plans, and that is the point: whatever it sends back must end in a
repair, a fallback or a clean failure with a known code, within a bounded time, never in a
traceback. So the tests assert what can be asserted with such a model: the exit code and
final status agree, any failure code is a known one, nothing in the output or the logs is a
traceback or a library's dump, and each conversation ends within its time bound (a safety
net, not a speed measurement; the times are printed). First, the server features the
defaults rely on (and the README states).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import exits
from examples.desktop_agent import ACTIONS
from graph.builder import make_services
from graph.config import Settings
from graph.llm import ChatModels, LLMOutputError, LLMTruncatedError
from graph.plan_steps import TITLE_MAX, plan_draft_model
from graph.tools.arguments import schema_errors
from graph.tools.catalogue import Catalogue, tool_entries
from graph.tools.executors import executor_entries
from lam.tools import references
from nodes.plan import draft_plan
from tests.support.cli_harness import PtyProcess, clean_env, run_cli
from tests.support.llama_server import MODEL_NAME, LlamaServer, find_llama
from tests.support.server_harness import ServerProcess, agree_to, done_for, open_conversation

# A real model plans at about 100 tokens/s: whole conversations take minutes (CONVERSATION_S).
pytestmark = [pytest.mark.llm, pytest.mark.slow, pytest.mark.timeout(1800)]

#: Failure codes a conversation may end with here: the model's and the plan check's.
KNOWN_CODES = {
    "llm_unreachable",
    "llm_timeout",
    "llm_server_error",
    "llm_truncated",
    "llm_bad_output",
    "invalid_plan",
    # ToDos: a step that took too long, the desktop saying no, an executor refusing the
    # inputs a small model wrote (a `template` step without text, an `http` step's URL).
    "timeout",
    "not_done",
    "bad_inputs",
    "bad_template",
    "url_not_allowed",
    "http_error",
    "http_status",
    # A tool's arguments that no longer fit once resolved, a tool gone, a tool's error.
    "bad_arguments",
    "tool_unavailable",
    "tool_error",
}
NOISE = ("Traceback", "ValidationError", "errors.pydantic.dev", "CompletionUsage")
#: Upper bound of one conversation: a safety net against hangs, never a speed assert.
CONVERSATION_S = 900.0

SHRED = "Find my tax files and shred them"

# (name, request, route target): the front door's kinds of request, in both languages.
REQUESTS = [
    ("rule-matched", "Remind me to call Anna tomorrow at 9", "template"),
    (
        "compound",
        "Find a free slot with Tom next week, book it and email him the agenda",
        "planner",
    ),
    (
        "no-intent",
        "Organise a three-day trip to Lisbon with flights, a hotel and a museum visit",
        "planner",
    ),
    ("smalltalk", "Hi, good morning!", "answer"),
    ("german-question", "Was ist die Hauptstadt von Australien?", "answer"),
]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    found = find_llama()
    if found.missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the LLM server is required in CI: {found.missing}", pytrace=False)
        pytest.skip(found.missing)
    server = LlamaServer(found, tmp_path_factory.mktemp("llama") / "llama-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def llm_env(llama: LlamaServer, directory: Path, **extra: str) -> dict[str, str]:
    """The README's settings for an OpenAI-compatible server, nothing more."""
    return clean_env(directory, CPA_LLM_BASE_URL=llama.url, CPA_LLM_MODEL=MODEL_NAME, **extra)


def assert_clean(text: str) -> None:
    for noise in NOISE:
        assert noise not in text, f"{noise!r} in:\n{text[-3000:]}"


def assert_ended_well(final: dict[str, Any]) -> None:
    """Final status, known failure codes, an answer last, a valid LAM log."""
    assert final["status"] in ("done", "failed", "waiting"), final["status"]
    codes = [
        m["content"]["error"]["code"] for m in final["messages"] if m["performative"] == "failure"
    ]
    assert set(codes) <= KNOWN_CODES, codes
    if final["status"] == "failed" and isinstance(final["result"], dict):
        error = final["result"].get("error")
        assert error is None or error["code"] in KNOWN_CODES, error
    if final["status"] != "waiting":
        answer = final["messages"][-1]
        assert answer["performative"] == "inform" and answer["content"]["topic"] == "answer"
        assert answer["content"]["text"].strip()
        assert_clean(answer["content"]["text"])


def route_of(final: dict[str, Any]) -> str:
    (route,) = [m for m in final["messages"] if m["performative"] == "route"]
    return str(route["content"]["target"])


# -- what the defaults rely on --------------------------------------------------------------


@pytest.mark.parametrize("request_text", [SHRED, "Book a table and email Anna the address"])
async def test_json_schema_output_names_only_catalogue_tools_with_valid_arguments(
    llama: LlamaServer, request_text: str
) -> None:
    settings = Settings.from_env({"CPA_LLM_BASE_URL": llama.url, "CPA_LLM_MODEL": MODEL_NAME})
    assert settings.structured_output_method == "json_schema"
    svc = make_services(settings)
    # The planner's executors and the desktop agent's offered actions, as `plan` sees them.
    catalogue = Catalogue.merge(
        executor_entries(svc.executors), tool_entries(ACTIONS, "offer:cpa-desktop", "desktop")
    )
    plan = await draft_plan(svc.models, request_text, catalogue, 3)
    # Grammar-constrained: every step names an entry of the catalogue, with arguments its
    # schema accepts where they are values, and references to steps of the plan; the bounds
    # hold. (Whether a reference makes sense, the model's own step say, is `check`'s.)
    assert 1 <= len(plan.todos) <= 3
    for todo in plan.todos:
        assert 1 <= len(todo.title) <= TITLE_MAX
        entry = catalogue.get(todo.tool.name if todo.tool is not None else todo.executor)
        assert entry is not None, todo
        arguments = todo.tool.arguments if todo.tool is not None else todo.inputs
        assert schema_errors(arguments, entry.tool.input_schema) == [], todo
        assert {ref for _, ref in references(arguments)} <= set(plan.ids)


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
async def test_the_token_limit_is_honoured_and_named(llama: LlamaServer, param: str) -> None:
    settings = Settings.from_env(
        {
            "CPA_LLM_BASE_URL": llama.url,
            "CPA_LLM_MODEL": MODEL_NAME,
            "CPA_LLM_MAX_TOKENS_PARAM": param,
            "CPA_LLM_MAX_TOKENS": "8",
        }
    )
    models = ChatModels(settings)
    text = await models.text("executor", [("user", "Tell me a long story about Rome.")])
    assert text.endswith("…")  # cut at 8 tokens, and marked so
    with pytest.raises(LLMTruncatedError, match="CPA_PLANNER_MAX_TOKENS"):
        await models.structured("planner", plan_draft_model(3), [("user", "Plan a trip to Rome.")])


async def test_forced_tool_calls_fail_with_the_setting_to_try(llama: LlamaServer) -> None:
    # The model's chat template has no tools: llama.cpp answers in prose, no tool call.
    settings = Settings.from_env(
        {
            "CPA_LLM_BASE_URL": llama.url,
            "CPA_LLM_MODEL": MODEL_NAME,
            "CPA_LLM_STRUCTURED_OUTPUT": "function_calling",
            "CPA_ROUTER_MAX_TOKENS": "48",
        }
    )
    with pytest.raises(LLMOutputError) as failed:
        await ChatModels(settings).structured(
            "router", plan_draft_model(2), [("user", "Book a table")]
        )
    message = str(failed.value)
    assert "function_calling" in message and "CPA_LLM_STRUCTURED_OUTPUT=json_schema" in message
    assert_clean(message)


# -- conversations over the command line ------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "target"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_cli_conversation(
    llama: LlamaServer, tmp_path: Path, name: str, text: str, target: str
) -> None:
    started = time.monotonic()
    run = run_cli(
        ["run", "--json", "--yes", text], llm_env(llama, tmp_path), timeout=CONVERSATION_S
    )
    took = time.monotonic() - started
    print(f"\n{name}: {took:.1f} s, exit {run.returncode}")

    assert_clean(run.stdout + run.stderr)
    final = json.loads(run.stdout)
    expected_exit = {"done": exits.OK, "failed": exits.FAILED, "waiting": exits.WAITING}
    assert run.returncode == expected_exit[final["status"]], run.stderr
    assert_ended_well(final)
    assert route_of(final) == target
    if name in ("rule-matched", "smalltalk"):
        # No LLM call: a template plan (waiting for the desktop agent), a canned greeting.
        assert final["status"] == ("waiting" if name == "rule-matched" else "done")
    if name == "german-question":
        assert final["status"] == "done" and final["intent"] == "question"


def test_cli_at_a_terminal_shows_which_step_waits_on_the_model(
    llama: LlamaServer, tmp_path: Path
) -> None:
    _name, text, _target = REQUESTS[2]  # a task no intent fits: the router, then the planner
    term = PtyProcess(["run", text], llm_env(llama, tmp_path))
    try:
        term.expect(r"router: waiting for the router model \(smollm2\) to classify", 60)
        term.expect(r"planner: waiting for the planner model \(smollm2\) to plan", 120)
        deadline = time.monotonic() + CONVERSATION_S
        while term.proc.poll() is None and time.monotonic() < deadline:
            if re.search(r"Carry out this plan\? \[y/n\] $", term.screen.rstrip(" ")):
                term.sendline("n")  # the plan's steps are not the point here
                term.expect(r"Why not\?")
                term.sendline("")
            time.sleep(0.2)
        assert term.wait(30) in (exits.OK, exits.FAILED)
    finally:
        term.close()
    assert_clean(term.screen)


# -- conversations over HTTP ----------------------------------------------------------------


async def _converse(client: httpx.AsyncClient, text: str) -> dict[str, Any]:
    """One conversation to its end, answering as the person and the desktop agent would."""
    cid = (await open_conversation(client, text))["conversation_id"]
    deadline = time.monotonic() + CONVERSATION_S
    while time.monotonic() < deadline:
        body = dict((await client.get(f"/v1/conversations/{cid}")).json())
        if body["status"] in ("done", "failed"):
            return body
        if body["status"] == "waiting":
            for message in (await client.get(f"/v1/conversations/{cid}/inbox")).json():
                if message["performative"] == "propose":
                    answer = agree_to(message)
                else:
                    answer = done_for(message, "done on the desktop")
                response = await client.post("/v1/lam", json=answer)
                assert response.status_code == 202, response.text
        await asyncio.sleep(0.2)
    raise AssertionError(f"conversation {cid} did not end in {CONVERSATION_S} s")


async def test_http_conversations(
    llama: LlamaServer, tmp_path: Path, valkey_url: str, redis_prefix: str
) -> None:
    env = llm_env(llama, tmp_path, REDIS_URL=valkey_url, CPA_REDIS_PREFIX=redis_prefix)
    server = ServerProcess(env, tmp_path / "serve.log", cli=True, inherit=False)
    server.start()
    took: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            for name, text, target in REQUESTS:
                started = time.monotonic()
                final = await _converse(client, text)
                took[name] = time.monotonic() - started
                assert_ended_well(final)
                assert route_of(final) == target, name
                if name != "compound" and name != "no-intent":
                    assert final["status"] == "done", (name, final["result"])
    finally:
        server.stop()
        print("\n" + ", ".join(f"{n}: {s:.1f} s" for n, s in took.items()))
    assert_clean(server.log())
