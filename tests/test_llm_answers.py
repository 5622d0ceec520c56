"""What the planner does with what models really send back (issue 13), with scripted models.

A plan with empty fields, one cut off at the token limit, prose instead of JSON, an executor
that does not exist: each goes back to the model as a repair within the budget, and ends in
a clean `failure` with its code when the budget is spent; never an exception out of a node,
never a conversation left `running`. The same through the command line and over HTTP, with
a scripted server behind the real clients (tests/support/fake_llm.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage

from cli import exits
from graph.builder import INTERNAL_ERROR
from graph.plan_schema import plan_json_schema, step_variants
from graph.plan_steps import PlanDraft, StepDraft
from graph.tools.catalogue import Catalogue
from graph.tools.executors import executor_entries
from lam import LAMMessage, Plan
from nodes.plan import plan_messages
from tests.support.cli_harness import PtyProcess, clean_env, run_cli
from tests.support.executors import RecordingExecutor
from tests.support.fake_llm import FakeLLMServer, Reply
from tests.support.planner_harness import Conversation, services
from tests.support.scripted import ScriptedChatModel, UncallableChatModel, cut_off, steps
from tests.support.server_harness import ServerProcess, open_conversation, wait_status

REQUEST = "Write an email to Tom with the agenda"  # rule-matched, planned by the LLM
TASK = "Organise a three-day trip to Lisbon with flights, a hotel and a museum visit"
EMPTY_STEP = {"title": "", "description": "", "tool": "", "after": []}
EMPTY_PLAN = {"goal": "g", "steps": [EMPTY_STEP]}
# The crash of issue 13 came from answers in the old shape: ToDos with empty ids.
OLD_SHAPE = {"goal": "g", "todos": [{"id": "", "title": "", "executor": ""}]}
GOOD = steps({"goal": "Mail Tom", "todos": [{"id": "t1", "title": "Draft", "executor": "work"}]})
LIBRARY_NOISE = ("errors.pydantic.dev", "python.langchain.com", "Traceback", "ValidationError")


def _answer(state: dict[str, Any]) -> str:
    answer = state["lam"][-1]
    assert answer["performative"] == "inform" and answer["content"]["topic"] == "answer"
    return str(answer["content"]["text"])


def _failures(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["content"]["error"] for m in state["lam"] if m["performative"] == "failure"]


def _planning(*answers: Any, **settings: Any) -> tuple[Conversation, ScriptedChatModel]:
    planner = ScriptedChatModel.script(structured=answers)
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[RecordingExecutor()],
        **settings,
    )
    return Conversation(svc), planner


def _clean(text: str) -> None:
    for noise in LIBRARY_NOISE:
        assert noise not in text, text


# -- answers that are no plan go back as repairs ------------------------------------------


@pytest.mark.parametrize("answer", [EMPTY_PLAN, OLD_SHAPE], ids=["empty-fields", "old-shape"])
async def test_a_plan_with_empty_fields_ends_in_a_logged_failure_and_an_answer(
    answer: dict[str, Any],
) -> None:
    conv, planner = _planning(answer, answer, answer, max_plan_repairs=2)

    state = await conv.start(REQUEST)

    assert planner.remaining == 0  # asked three times: the first answer and two repairs
    assert state["status"] == "failed"
    error = state["result"]["error"]
    assert error["code"] == "llm_bad_output"
    assert "after 2 repair(s)" in error["message"]
    codes = [e["code"] for e in _failures(state)]
    assert codes == ["llm_bad_output"] * 3  # two sent back to the planner, one to the user
    _clean(_answer(state))
    assert (await conv.interrupts()) == []
    # Nothing is left to run: carrying on calls no model again.
    again = await conv.carry_on()
    assert again["status"] == "failed" and planner.remaining == 0
    # The repair showed the model its answer and what is wrong with it.
    repair = planner.calls[1][2]
    assert isinstance(repair[-2], AIMessage) and json.loads(repair[-2].text) == answer
    assert "steps" in repair[-1].text and "title" in repair[-1].text


async def test_a_plan_cut_off_at_the_token_limit_is_asked_for_again_shorter() -> None:
    conv, planner = _planning(cut_off('{"goal": "Mail Tom", "steps": [{"title": "Dra'), GOOD)

    state = await conv.start(REQUEST)

    assert state["status"] == "done" and planner.remaining == 0
    assert [e["code"] for e in _failures(state)] == ["llm_truncated"]
    repair = planner.calls[1][2]
    assert "cut off" in repair[-1].text and "shorter" in repair[-1].text
    assert not any(isinstance(m, AIMessage) for m in repair)  # the cut answer is not shown


async def test_prose_instead_of_json_is_asked_for_again() -> None:
    conv, planner = _planning("Sure! First I write, then I send.", GOOD)
    state = await conv.start(REQUEST)
    assert state["status"] == "done" and planner.remaining == 0
    assert [e["code"] for e in _failures(state)] == ["llm_bad_output"]
    assert "not a JSON object" in planner.calls[1][2][-1].text


async def test_an_executor_that_does_not_exist_goes_back_with_the_ones_that_do() -> None:
    tom = {"goal": "Mail Tom", "steps": [{**EMPTY_STEP, "title": "Ask", "tool": "Tom"}]}
    conv, planner = _planning(tom, GOOD)
    state = await conv.start(REQUEST)
    assert state["status"] == "done"
    told = planner.calls[1][2][-1].text
    assert "names 'Tom', which is neither a tool nor an executor" in told
    assert "executors: desktop, http, human, llm, template, work" in told


async def test_a_truncated_plan_with_no_repairs_left_fails_with_llm_truncated() -> None:
    conv, _ = _planning(cut_off('{"goal": "x", "steps": ['), max_plan_repairs=0)
    state = await conv.start(REQUEST)
    assert state["status"] == "failed"
    assert state["result"]["error"]["code"] == "llm_truncated"
    assert "token limit" in _answer(state)
    _clean(_answer(state))


# -- steps become ToDos -------------------------------------------------------------------


async def test_numbered_steps_become_ids_and_dependencies() -> None:
    draft = {
        "goal": "Report",
        "steps": [
            {"title": "Collect", "description": "", "tool": "work", "after": []},
            {"title": "Count", "description": "", "tool": "work", "after": []},
            # Naming itself means nothing (dropped); a repeated number counts once.
            {"title": "Write", "description": "", "tool": "work", "after": [1, 2, 3, 1]},
        ],
    }
    conv, _ = _planning(draft)
    state = await conv.start(REQUEST)
    plan = Plan.model_validate(state["plan"])
    assert [(t.id, t.depends_on) for t in plan.todos] == [
        ("t1", []),
        ("t2", []),
        ("t3", ["t1", "t2"]),
    ]
    assert state["status"] == "done"


async def test_a_step_after_one_that_does_not_exist_is_repaired() -> None:
    ahead = {"goal": "g", "steps": [{**EMPTY_STEP, "title": "A", "tool": "work", "after": [4]}]}
    conv, planner = _planning(ahead, GOOD)
    state = await conv.start(REQUEST)
    assert state["status"] == "done" and state["repairs"] == 1
    repair = planner.calls[1][2]
    assert "step-4" in repair[-1].text and "ToDo tN is your step N" in repair[-1].text
    # The model sees its plan in its own form: steps and numbers, not ids.
    shown = json.loads(repair[-2].text)
    assert shown["steps"][0]["after"] == [4] and "todos" not in shown


def test_the_plan_schema_leaves_little_room_and_the_prompt_names_every_key() -> None:
    svc = services()
    catalogue = Catalogue.merge(executor_entries(svc.executors), [])
    schema = plan_json_schema(catalogue, 4)
    assert schema["title"] == "PlanDraft"
    # One to four steps: a tuple per length, step N the same at every length.
    lengths = schema["properties"]["steps"]["anyOf"]
    assert [len(t["prefixItems"]) for t in lengths] == [1, 2, 3, 4]
    assert lengths[3]["prefixItems"][:2] == lengths[1]["prefixItems"]
    assert schema["properties"]["goal"]["minLength"] == 1
    for number in (1, 4):
        variants = step_variants(schema, number)
        # One variant per executor, each naming it and its own arguments.
        assert [v["properties"]["tool"]["const"] for v in variants] == catalogue.names()
        for variant in variants:
            assert set(variant["required"]) == {
                "title",
                "description",
                "tool",
                "arguments",
                "after",
            }
            assert variant["additionalProperties"] is False
    title = schema["$defs"]["step_title"]
    assert title["minLength"] == 1 and title["maxLength"] > 0
    # A step may only name earlier steps: no cycle, no step past the plan's end.
    assert schema["$defs"]["step_1_after"]["maxItems"] == 0
    assert schema["$defs"]["step_3_after"]["items"] == {"enum": [1, 2]}
    assert schema["$defs"]["step_3_after"]["maxItems"] == 2
    # json_mode has only the prompt to go by: it names every key of the schema.
    prompt = plan_messages({"request": REQUEST, "intent": {}}, catalogue, 4)[0].text
    for key in [*PlanDraft.model_fields, *StepDraft.model_fields]:
        assert f'"{key}"' in prompt, key
    for name in svc.executors.names():
        assert name in prompt


# -- replanning and the router ------------------------------------------------------------


async def test_a_replan_answer_with_empty_fields_ends_cleanly() -> None:
    work = RecordingExecutor(fail={"t1"})
    first = steps({"goal": "g", "todos": [{"id": "t1", "title": "A", "executor": "work"}]})
    planner = ScriptedChatModel.script(structured=[first, {"steps": [EMPTY_STEP]}])
    svc = services(models={"router": UncallableChatModel(), "planner": planner}, executors=[work])
    conv = Conversation(svc)

    state = await conv.start(REQUEST)

    assert planner.remaining == 0 and state["replans"] == 1
    assert state["status"] == "failed" and work.runs("t1") == 1
    assert "t1" in _answer(state)
    _clean(_answer(state))


@pytest.mark.parametrize(
    "answer",
    [cut_off('{"intent": "cal'), "I think it is about the calendar", {"confidence": 0.9}],
    ids=["cut-off", "prose", "no-intent"],
)
async def test_a_router_without_a_valid_answer_hands_over_to_the_planner(answer: Any) -> None:
    router = ScriptedChatModel.script(structured=[answer])
    planner = ScriptedChatModel.script(structured=[GOOD])
    svc = services(models={"router": router, "planner": planner}, executors=[RecordingExecutor()])
    state = await Conversation(svc).start("Could you sort things out with Tom about next week")
    assert state["intent"]["router_error"]
    assert state["status"] == "done" and planner.remaining == 0


# -- a node that breaks ---------------------------------------------------------------------


class _BrokenEffects(RecordingExecutor):
    """An executor whose per-step effect raises: third-party code with a bug."""

    def effect_for(self, todo: Any) -> str:
        raise ValueError("effect table missing")


async def test_an_unexpected_error_in_a_node_ends_the_turn_with_a_failure_and_an_answer() -> None:
    planner = ScriptedChatModel.script(structured=[GOOD])
    broken = _BrokenEffects(name="work")
    svc = services(models={"router": UncallableChatModel(), "planner": planner}, executors=[broken])
    conv = Conversation(svc)

    state = await conv.start(REQUEST)

    assert state["status"] == "failed"
    error = state["result"]["error"]
    assert error["code"] == INTERNAL_ERROR
    assert error["message"] == "the plan step failed: ValueError: effect table missing"
    assert "effect table missing" in _answer(state)
    for message in state["lam"]:
        LAMMessage.from_dict(message)
    # Ended, not stuck: nothing runs again.
    assert (await conv.carry_on())["status"] == "failed" and broken.runs("t1") == 0


# -- the same through the command line and over HTTP ----------------------------------------


@pytest.fixture
def bad_planner() -> Iterator[FakeLLMServer]:
    """A server whose every structured answer is a plan with empty fields."""
    with FakeLLMServer(default=Reply(structured=EMPTY_PLAN, text="")) as server:
        yield server


def _llm_env(directory: Path, server: FakeLLMServer, **extra: str) -> dict[str, str]:
    return clean_env(
        directory,
        CPA_LLM_BASE_URL=f"{server.url}/v1",
        CPA_LLM_MODEL="scripted",
        CPA_LLM_MAX_RETRIES="0",
        **extra,
    )


@pytest.mark.slow
def test_cli_a_plan_with_empty_fields_fails_cleanly_and_resume_asks_no_model(
    tmp_path: Path, bad_planner: FakeLLMServer
) -> None:
    env = _llm_env(tmp_path, bad_planner)

    run = run_cli(["run", "--json", REQUEST], env)

    assert run.returncode == exits.FAILED, run.stderr
    final = json.loads(run.stdout)  # --json prints the final object
    assert final["status"] == "failed"
    assert final["result"]["error"]["code"] == "llm_bad_output"
    assert final["messages"][-1]["content"]["topic"] == "answer"
    _clean(run.stdout + run.stderr)
    asked = bad_planner.count()
    assert asked == 3  # the plan and two repairs (the request is rule-matched: no router)

    again = run_cli(["resume", final["conversation_id"], "--json"], env)
    assert again.returncode == exits.FAILED, again.stderr
    assert json.loads(again.stdout)["status"] == "failed"
    assert bad_planner.count() == asked  # no model call into the same crash
    _clean(again.stdout + again.stderr)


@pytest.mark.slow
async def test_http_a_plan_with_empty_fields_fails_cleanly_with_an_answer(
    tmp_path: Path, valkey_url: str, redis_prefix: str, bad_planner: FakeLLMServer
) -> None:
    env = _llm_env(tmp_path, bad_planner, REDIS_URL=valkey_url, CPA_REDIS_PREFIX=redis_prefix)
    server = ServerProcess(env, tmp_path / "serve.log", cli=True, inherit=False)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            opened = await open_conversation(client, TASK)
            body = await wait_status(client, opened["conversation_id"], {"done", "failed"}, 60)
    finally:
        server.stop()
    assert body["status"] == "failed"
    assert body["result"]["error"]["code"] == "llm_bad_output"
    kinds = [m["performative"] for m in body["messages"]]
    assert kinds[:2] == ["request", "route"] and kinds[-2:] == ["failure", "inform"]
    assert body["messages"][-1]["content"]["topic"] == "answer"
    _clean(json.dumps(body) + server.log())


# -- which step waits on a model, and the answer as it is written ----------------------------


async def test_each_model_call_is_news_on_the_stream_and_the_answer_streams() -> None:
    planner = ScriptedChatModel.script(structured=["no plan here", GOOD])
    executor = ScriptedChatModel.script(texts=["The agenda is drafted and ready."])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner, "executor": executor},
        executors=[RecordingExecutor()],
    )
    conv = Conversation(svc)

    state = await conv.start(REQUEST)

    waits = [
        (e["llm"]["node"], e["llm"]["phase"], e["llm"]["what"]) for e in conv.custom if "llm" in e
    ]
    assert waits == [
        ("plan", "start", "plan this request"),
        ("plan", "end", "plan this request"),
        ("plan", "start", "repair the plan"),
        ("plan", "end", "repair the plan"),
        ("respond", "start", "summarise the results"),
        ("respond", "end", "summarise the results"),
    ]
    tokens = [e["token"]["text"] for e in conv.custom if "token" in e]
    assert len(tokens) > 1 and "".join(tokens) == "The agenda is drafted and ready."
    assert all(e["token"]["node"] == "respond" for e in conv.custom if "token" in e)
    # The log still gets the answer once, whole.
    answers = [m for m in state["lam"] if m["content"].get("topic") == "answer"]
    assert [a["content"]["text"] for a in answers] == ["The agenda is drafted and ready."]


def test_the_terminal_view_shows_the_waiting_step_and_the_answer_being_written() -> None:
    from rich.console import Console

    from cli.view import ConversationModel, render

    model = ConversationModel(conversation_id="c1", request=TASK)
    start = {"node": "plan", "role": "planner", "model": "smollm2", "what": "plan this request"}
    line = model.activity({"llm": {**start, "phase": "start"}}, now=100.0)
    assert line == "planner: waiting for the planner model (smollm2) to plan this request"
    console = Console(width=120, record=True)
    console.print(render(model, now=112.5))
    assert "planner: waiting for the planner model (smollm2) to plan this request (12.5s)" in (
        console.export_text()
    )
    model.activity({"llm": {**start, "phase": "end"}}, now=113.0)
    assert model.stage(113.0) is not None and "waiting" not in str(model.stage(113.0))

    summary = {"node": "respond", "role": "executor", "model": "smollm2"}
    model.activity({"llm": {**summary, "what": "summarise the results", "phase": "start"}}, 120)
    assert str(model.stage(121.0)).startswith("summary: waiting for the executor model")
    for piece in ("Three ", "days ", "in Lisbon"):
        model.activity({"token": {"node": "respond", "text": piece}}, now=121.0)
    console = Console(width=120, record=True)
    console.print(render(model, now=122.0))
    shown = console.export_text()
    assert "Answer (being written)" in shown and "Three days in Lisbon" in shown


@pytest.mark.slow
async def test_http_events_stream_the_answer_as_the_model_writes_it(
    tmp_path: Path, valkey_url: str, redis_prefix: str
) -> None:
    written = "Canberra is the capital of Australia."
    # The model waits a moment before it writes: time for the stream to connect.
    with FakeLLMServer(default=Reply(text=written, delay_s=1.5)) as llm:
        env = _llm_env(tmp_path, llm, REDIS_URL=valkey_url, CPA_REDIS_PREFIX=redis_prefix)
        server = ServerProcess(env, tmp_path / "serve.log", cli=True, inherit=False)
        server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                opened = await open_conversation(client, "What is the capital of Australia?")
                cid = opened["conversation_id"]
                events = await _sse_events(client, cid, progress=True)
                plain = await _sse_events(client, cid, progress=False)
        finally:
            server.stop()
    kinds = [kind for kind, _ in events]
    tokens = [json.loads(data) for kind, data in events if kind == "token"]
    assert len(tokens) > 1 and "".join(t["text"] for t in tokens) == written
    assert {t["node"] for t in tokens} == {"respond"}
    ends = [json.loads(d) for k, d in events if k == "llm" and json.loads(d)["phase"] == "end"]
    assert [e["what"] for e in ends] == ["answer a question request"]
    answer = max(i for i, (kind, _) in enumerate(events) if kind == "message")
    assert kinds.index("token") < answer  # the pieces come before the answer itself
    assert json.loads(events[answer][1])["content"]["text"] == written
    # Without asking for progress, the stream is the LAM log alone, as before.
    assert {kind for kind, _ in plain} == {"message"}
    assert [d for k, d in plain] == [d for k, d in events if k == "message"]
    _clean(server.log())


async def _sse_events(
    client: httpx.AsyncClient, cid: str, *, progress: bool
) -> list[tuple[str, str]]:
    """(event name, data) of every event of the stream, to its end ("message" by default)."""
    events: list[tuple[str, str]] = []
    kind, data = "message", ""
    params = {"progress": "true"} if progress else {}
    async with client.stream(
        "GET", f"/v1/conversations/{cid}/events", params=params, timeout=60
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data:
                events.append((kind, data))
                kind, data = "message", ""
    return events


@pytest.mark.slow
def test_cli_through_the_server_shows_the_model_wait_too(
    tmp_path: Path, valkey_url: str, redis_prefix: str
) -> None:
    with FakeLLMServer(default=Reply(text="Canberra.", delay_s=2.0)) as llm:
        env = _llm_env(tmp_path, llm, REDIS_URL=valkey_url, CPA_REDIS_PREFIX=redis_prefix)
        server = ServerProcess(env, tmp_path / "serve.log", cli=True, inherit=False)
        server.start()
        term = PtyProcess(
            ["run", "--server", server.url, "What is the capital of Australia?"],
            clean_env(tmp_path / "client"),
        )
        try:
            term.expect(r"answer: waiting for the executor model \(scripted\)", 30)
            assert term.wait() == exits.OK
            term.expect(r"Canberra\.")
        finally:
            term.close()
            server.stop()
    _clean(term.screen + server.log())


async def test_a_list_of_problems_reads_as_one_sentence() -> None:
    # A cycle and a step after one that does not exist: two problems in one failure.
    broken = {
        "goal": "g",
        "steps": [
            {**EMPTY_STEP, "title": "A", "tool": "work", "after": [2]},
            {**EMPTY_STEP, "title": "B", "tool": "work", "after": [1, 7]},
        ],
    }
    conv, _ = _planning(broken, max_plan_repairs=0)
    state = await conv.start(REQUEST)
    message = state["result"]["error"]["message"]
    assert state["result"]["error"]["code"] == "invalid_plan"
    assert "step-7" in message and "cycle" in message
    assert ".;" not in message and message.endswith(".")
    assert "failed (failed" not in _answer(state)


class _Refusing(RecordingExecutor):
    """Fails its ToDo the way the desktop agent's `failure` comes back: code `failed`."""

    async def __call__(self, call: Any) -> Any:
        from graph.executor_registry import ExecutorError

        raise ExecutorError("failed", "the printer is off")


async def test_a_failed_step_says_failed_once() -> None:
    plan = steps(
        {"goal": "Print", "todos": [{"id": "t1", "title": "Print it", "executor": "work"}]}
    )
    planner = ScriptedChatModel.script(structured=[plan])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[_Refusing()],
        max_replans=0,
    )
    state = await Conversation(svc).start(REQUEST)
    answer = _answer(state)
    assert "- Print it: failed (the printer is off)" in answer
    assert "failed (failed" not in answer
