"""Observability of conversations, in process (issue 14): metrics, traces, log lines, privacy.

Conversations run on the real graph (in-memory checkpoints, the HTTP tests' small registry,
scripted models), reporting to a `Telemetry` whose spans go to the SDK's in-memory
exporter. Metrics are process-wide counters, so each test compares before and after.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from graph.builder import build_graph, make_services
from graph.config import Settings
from graph.conversations import Conversations
from graph.telemetry import Telemetry, TelemetrySettings, metrics
from graph.telemetry.contract import TODO_TASK
from graph.telemetry.handler import TelemetryHandler
from graph.telemetry.logs import JsonFormatter, TextFormatter, configure_logging, logging_config
from graph.telemetry.tracing import turn_ids
from lam import LAMMessage, MessageFactory
from lam.rfc3339 import parse_rfc3339
from tests.support.callbacks import ChainRecorder
from tests.support.executors import RecordingExecutor
from tests.support.scripted import ScriptedChatModel, steps
from tests.support.server_harness import CHORE_PLAN
from tests.support.server_harness import REGISTRY as SERVER_REGISTRY

TENANT = "acme"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Driver:
    """Conversations of one graph with telemetry; answers like a person and a desktop agent."""

    def __init__(
        self, telemetry: Telemetry, settings: dict[str, Any] | None = None, **services: Any
    ) -> None:
        base: dict[str, Any] = {
            "intents_path": str(SERVER_REGISTRY),
            "todo_retries": 0,
            "todo_retry_backoff_s": 0.0,
        }
        svc = make_services(Settings(**{**base, **(settings or {})}), **services)
        saver = InMemorySaver()
        self.conversations = Conversations(build_graph(svc, checkpointer=saver), saver, telemetry)
        self.messages: list[dict[str, Any]] = []

    async def open(self, text: str, owner: str = TENANT) -> str:
        cid = str(uuid.uuid4())
        request = MessageFactory("user", cid).request(text)
        async for message in self.conversations.stream(
            cid, Conversations.opening(request), owner=owner
        ):
            self.messages.append(message)
        return cid

    async def answer_all(self, cid: str, owner: str = TENANT, *, agree: bool = True) -> str:
        """Answer whatever waits until nothing does; the conversation's status."""
        while True:
            view = await self.conversations.view(cid, owner=owner)
            if not view.waiting:
                return view.status
            resume: dict[str, Any] = {}
            for waiting in view.waiting:
                asked = LAMMessage.from_dict(waiting.message)
                worker = MessageFactory(asked.receiver, cid)
                if asked.performative.value == "propose":
                    reply = worker.agree(asked) if agree else worker.refuse(asked, "not now")
                else:
                    reply = worker.done(asked, f"did {asked.content['todo']['id']}")
                command = await self.conversations.answer(cid, reply, owner=owner)
                resume.update(cast(dict[str, Any], command.resume))
            async for message in self.conversations.stream(
                cid, Command(resume=resume), owner=owner
            ):
                self.messages.append(message)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(spans: InMemorySpanExporter) -> Iterator[Telemetry]:
    telemetry = Telemetry(TelemetrySettings(), tenants=[TENANT], exporter=spans)
    yield telemetry
    telemetry.shutdown()


# Metrics ---------------------------------------------------------------------------------


async def test_a_template_conversation_moves_its_counters(telemetry: Telemetry) -> None:
    before = {
        "done": value("cpa_conversations_total", tenant=TENANT, intent="meeting", outcome="done"),
        "todos": value("cpa_todos_total", executor="desktop", outcome="done"),
        "todo_s": value("cpa_todo_duration_seconds_count", executor="desktop"),
        "rules": value("cpa_intent_decisions_total", tier="rules", intent="meeting"),
        "approval": value("cpa_interrupt_wait_seconds_count", kind="approval"),
        "desktop": value("cpa_interrupt_wait_seconds_count", kind="desktop"),
        "turn_s": value(
            "cpa_conversation_duration_seconds_count", intent="meeting", outcome="done"
        ),
        "execute": value("cpa_node_duration_seconds_count", node="execute"),
    }
    driver = Driver(telemetry)
    cid = await driver.open("Set up a meeting with Anna")
    assert await driver.answer_all(cid) == "done"

    assert (
        value("cpa_conversations_total", tenant=TENANT, intent="meeting", outcome="done")
        == before["done"] + 1
    )
    # t1 and t2 in parallel, then t3: three desktop ToDos, each waited for its answer.
    assert value("cpa_todos_total", executor="desktop", outcome="done") == before["todos"] + 3
    assert value("cpa_todo_duration_seconds_count", executor="desktop") == before["todo_s"] + 3
    assert value("cpa_interrupt_wait_seconds_count", kind="desktop") == before["desktop"] + 3
    assert value("cpa_interrupt_wait_seconds_count", kind="approval") == before["approval"] + 1
    assert (
        value("cpa_intent_decisions_total", tier="rules", intent="meeting") == before["rules"] + 1
    )
    assert (
        value("cpa_conversation_duration_seconds_count", intent="meeting", outcome="done")
        == before["turn_s"] + 1
    )
    # execute ran in every run that reached it: the first (waits), two answers, the last.
    assert value("cpa_node_duration_seconds_count", node="execute") >= before["execute"] + 3


async def test_outcomes_refused_failed_expired_and_tenants_not_configured(
    telemetry: Telemetry,
) -> None:
    def count(outcome: str, tenant: str = TENANT, intent: str = "meeting") -> float:
        return value("cpa_conversations_total", tenant=tenant, intent=intent, outcome=outcome)

    before = {o: count(o) for o in ("refused", "expired")}
    before["other"] = count("refused", tenant="other")
    before["failed"] = count("failed", intent="chore")
    driver = Driver(telemetry)

    refused = await driver.open("Set up a meeting with Anna")
    assert await driver.answer_all(refused, agree=False) == "done"
    assert count("refused") == before["refused"] + 1

    # A tenant nobody configured is counted, under `other` (bounded labels).
    stranger = await driver.open("Set up a meeting with Anna", owner="intruder")
    await driver.answer_all(stranger, owner="intruder", agree=False)
    assert count("refused", tenant="other") == before["other"] + 1
    assert count("refused", tenant="intruder") == 0

    # No planner model for a chore: the turn fails.
    failed = await driver.open("Do the chore")
    assert (await driver.conversations.view(failed, owner=TENANT)).status == "failed"
    assert count("failed", intent="chore") == before["failed"] + 1

    waiting = await driver.open("Set up a meeting with Anna")
    await driver.conversations.abandon(waiting, "expired", "no answer", owner=TENANT)
    assert count("expired") == before["expired"] + 1


def _repairing_driver(telemetry: Telemetry, *, stream_plans: bool = False) -> Driver:
    """A chore the planner gets right at the third answer; its step fails, and is re-planned.

    With `stream_plans`, t1 (it only reads) runs and fails inside `plan`, while the plan is
    written: its task's messages reach telemetry before the plan's `propose`."""
    not_a_plan = {"nonsense": 1}  # the planner's answer does not fit: asked again
    cyclic = {
        "goal": "Do the chore",
        "todos": [
            {"id": "t1", "title": "A", "executor": "work", "depends_on": ["t2"]},
            {"id": "t2", "title": "B", "executor": "work", "depends_on": ["t1"]},
        ],
    }
    plan = {"goal": "Do the chore", "todos": [{"id": "t1", "title": "A", "executor": "work"}]}
    remaining = {
        "steps": steps({"todos": [{"id": "t2", "title": "B again", "executor": "work"}]})["steps"]
    }
    summary = AIMessage(
        "All done.", usage_metadata={"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}
    )
    return Driver(
        telemetry,
        chat_models={
            "planner": ScriptedChatModel.script(
                structured=[not_a_plan, steps(cyclic), steps(plan), remaining]
            ),
            "executor": ScriptedChatModel(messages=iter([summary])),
        },
        extra_executors=[RecordingExecutor(fail={"t1"})],
        settings={"max_plan_repairs": 3, "stream_plans": stream_plans},
    )


@pytest.mark.parametrize("stream_plans", [False, True], ids=["whole-plan", "streamed-plan"])
async def test_llm_calls_tokens_repairs_and_replans_are_counted(
    telemetry: Telemetry, stream_plans: bool
) -> None:
    driver = _repairing_driver(telemetry, stream_plans=stream_plans)
    before = {
        "bad": value("cpa_llm_calls_total", role="planner", outcome="bad_output"),
        "ok": value("cpa_llm_calls_total", role="planner", outcome="ok"),
        "exec_ok": value("cpa_llm_calls_total", role="executor", outcome="ok"),
        "prompt": value("cpa_llm_tokens_total", role="executor", kind="prompt"),
        "completion": value("cpa_llm_tokens_total", role="executor", kind="completion"),
        "repairs": value("cpa_plan_repairs_total"),
        "replans": value("cpa_replans_total"),
        "failed": value("cpa_todos_total", executor="work", outcome="failed"),
        "done": value("cpa_todos_total", executor="work", outcome="done"),
        "llm_s": value("cpa_llm_call_duration_seconds_count", role="planner"),
    }
    cid = await driver.open("Do the chore")
    await driver.answer_all(cid)

    # The first answer is no plan (asked again), the second is cyclic (repaired by check),
    # the third runs; its step fails and the rest is planned again.
    assert (await driver.conversations.view(cid, owner=TENANT)).status == "done"
    assert value("cpa_llm_calls_total", role="planner", outcome="bad_output") == before["bad"] + 1
    assert value("cpa_plan_repairs_total") == before["repairs"] + 1
    assert value("cpa_replans_total") == before["replans"] + 1
    assert value("cpa_todos_total", executor="work", outcome="failed") == before["failed"] + 1
    assert value("cpa_todos_total", executor="work", outcome="done") == before["done"] + 1
    assert value("cpa_llm_calls_total", role="planner", outcome="ok") == before["ok"] + 3
    assert value("cpa_llm_call_duration_seconds_count", role="planner") == before["llm_s"] + 4
    assert value("cpa_llm_calls_total", role="executor", outcome="ok") == before["exec_ok"] + 1
    assert value("cpa_llm_tokens_total", role="executor", kind="prompt") == before["prompt"] + 11
    assert (
        value("cpa_llm_tokens_total", role="executor", kind="completion")
        == before["completion"] + 7
    )


async def test_a_streamed_plan_whose_steps_started_early_is_no_replan(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    """Steps that ran while the plan was written are ToDos of that plan: one plan, no
    re-plan, each ToDo counted once under its executor."""
    plan = {
        "goal": "Do the chore",
        "todos": [
            {"id": "t1", "title": "A", "executor": "work"},
            {"id": "t2", "title": "B", "executor": "work", "depends_on": ["t1"]},
        ],
    }
    driver = Driver(
        telemetry,
        chat_models={"planner": ScriptedChatModel.script(structured=[steps(plan)])},
        extra_executors=[RecordingExecutor()],
    )
    before = {
        "replans": value("cpa_replans_total"),
        "done": value("cpa_todos_total", executor="work", outcome="done"),
        "unknown": value("cpa_todos_total", executor="unknown", outcome="done"),
    }
    cid = await driver.open("Do the chore")
    view = await driver.conversations.view(cid, owner=TENANT)
    assert view.status == "done"
    # Both ran inside `plan` (no `execute` had anything left to run).
    assert [m["performative"] for m in view.messages].index("propose") < [
        m["performative"] for m in view.messages
    ].index("assign")
    assert value("cpa_replans_total") == before["replans"]
    assert value("cpa_todos_total", executor="work", outcome="done") == before["done"] + 2
    assert value("cpa_todos_total", executor="unknown", outcome="done") == before["unknown"]
    todo_spans = [s for s in spans.get_finished_spans() if s.name.startswith("todo ")]
    assert {(s.attributes or {}).get("cpa.todo.executor") for s in todo_spans} == {"work"}


async def test_the_repair_of_a_streamed_plan_whose_step_started_early_is_no_replan(
    telemetry: Telemetry,
) -> None:
    """`check` sends the plan back after its first step ran while it was written: the next
    proposal repairs it (one repair), it is no re-plan."""
    bad = {
        "goal": "Do the chore",
        "todos": [
            {"id": "t1", "title": "A", "executor": "work"},
            {"id": "t2", "title": "B", "executor": "no_such_executor", "depends_on": ["t1"]},
        ],
    }
    good = {
        "goal": "Do the chore",
        "todos": [
            {"id": "t1", "title": "A", "executor": "work"},
            {"id": "t2", "title": "B", "executor": "work", "depends_on": ["t1"]},
        ],
    }
    work = RecordingExecutor()
    driver = Driver(
        telemetry,
        chat_models={"planner": ScriptedChatModel.script(structured=[steps(bad), steps(good)])},
        extra_executors=[work],
    )
    before = (value("cpa_replans_total"), value("cpa_plan_repairs_total"))
    cid = await driver.open("Do the chore")
    assert (await driver.conversations.view(cid, owner=TENANT)).status == "done"
    assert work.runs("t1") == 1  # it ran early, in the first round; the repair kept it
    assert (value("cpa_replans_total"), value("cpa_plan_repairs_total")) == (
        before[0],
        before[1] + 1,
    )


def _renamed(event: tuple[str, tuple[Any, ...], dict[str, Any]]) -> tuple[Any, ...]:
    """The callback with every node of the graph under another name (the ToDo task keeps
    the name the code tells telemetry: `graph.telemetry.contract.TODO_TASK`)."""
    name, args, kwargs = event
    metadata = dict(kwargs.get("metadata") or {})
    kwargs = dict(kwargs)
    node = metadata.get("langgraph_node")
    if node and node != TODO_TASK and kwargs.get("name") == node:
        kwargs["name"] = metadata["langgraph_node"] = f"step_{sum(map(ord, node))}"
        kwargs["metadata"] = metadata
    return name, args, kwargs


def _counts() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter and histogram count of ours but the per-node and per-LLM-call ones."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in REGISTRY.collect()
        if metric.name.startswith("cpa_") and not metric.name.startswith(("cpa_node", "cpa_llm"))
        for sample in metric.samples
        if sample.name.endswith(("_total", "_count"))
    }


def _moved(replay: Callable[[], None]) -> dict[Any, float]:
    before = _counts()
    replay()
    return {k: v - before.get(k, 0.0) for k, v in _counts().items() if v != before.get(k, 0.0)}


async def test_metrics_read_the_log_not_node_names() -> None:
    """Renaming every node moves no metric differently: the handler reads what the
    messages each step added say, not which node added them."""
    recorder = ChainRecorder()
    recording = Telemetry(TelemetrySettings(metrics=False))
    recording.handler = recorder  # type: ignore[assignment]
    driver = Driver(recording)
    cid = await driver.open("Set up a meeting with Anna")  # rules, approval, desktop ToDos
    await driver.answer_all(cid)
    refused = await driver.open("Set up a meeting with Anna")
    await driver.answer_all(refused, agree=False)
    repairing = _repairing_driver(recording)  # a bad answer, a repair, a failed ToDo, a re-plan
    await repairing.answer_all(await repairing.open("Do the chore"))

    def replay(rename: bool) -> None:
        handler = TelemetryHandler(tenants=metrics.TenantLabels([TENANT]))
        for event in recorder.events:
            name, args, kwargs = _renamed(event) if rename else event
            getattr(handler, name)(*args, **kwargs)

    as_named = _moved(lambda: replay(False))
    renamed = _moved(lambda: replay(True))
    assert as_named == renamed
    counted = {name for name, _ in as_named}
    assert {
        "cpa_conversations_total",
        "cpa_intent_decisions_total",
        "cpa_todos_total",
        "cpa_plan_repairs_total",
        "cpa_replans_total",
        "cpa_interrupt_wait_seconds_count",
    } <= counted


async def test_metrics_off_counts_nothing_and_adds_no_callback() -> None:
    telemetry = Telemetry(TelemetrySettings(metrics=False))
    assert telemetry.handler is None
    assert "callbacks" not in telemetry.run_config("c", TENANT, "open")
    before = value("cpa_conversations_total", tenant="other", intent="note", outcome="done")
    driver = Driver(telemetry)
    cid = await driver.open("Take a note: milk")
    assert (await driver.conversations.view(cid, owner=TENANT)).status == "done"
    assert value("cpa_conversations_total", tenant="other", intent="note", outcome="done") == before


def test_run_config_names_and_labels_a_run_tags_only_with_langsmith_on() -> None:
    import langsmith

    with langsmith.tracing_context(enabled=False):
        config = Telemetry(TelemetrySettings(metrics=False)).run_config("c1", TENANT, "answer")
    assert config["run_name"] == "cpa-planner answer"
    assert config["metadata"] == {"conversation_id": "c1", "tenant": TENANT, "cpa_turn": "answer"}
    assert "tags" not in config
    with langsmith.tracing_context(enabled=True):
        config = Telemetry(TelemetrySettings(metrics=False)).run_config("c1", None, "open")
    assert config["metadata"] == {"conversation_id": "c1", "cpa_turn": "open"}
    assert sorted(config["tags"]) == ["conversation_id:c1", "turn:open"]


# Traces ----------------------------------------------------------------------------------


def _tree(spans: list[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    children: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else 0
        children.setdefault(parent, []).append(span)
    return children


async def test_a_turn_is_one_trace_runs_nodes_todos_under_it(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    driver = Driver(telemetry)
    cid = await driver.open("Set up a meeting with Anna")
    assert await driver.answer_all(cid) == "done"
    finished = list(spans.get_finished_spans())

    request = next(m for m in driver.messages if m["performative"] == "request")
    trace_id, turn_span_id = turn_ids(f"{TENANT}/{cid}", request["id"])
    assert {s.context.trace_id for s in finished} == {trace_id}

    # The turn: the root, from the request's timestamp to the answer, with its derived id.
    (turn,) = [s for s in finished if s.parent is None]
    assert turn.name == "turn"
    assert turn.context.span_id == turn_span_id
    assert turn.start_time == int(parse_rfc3339(request["timestamp"]).timestamp() * 1e9)
    assert turn.attributes is not None
    assert turn.attributes["cpa.conversation_id"] == cid
    assert turn.attributes["cpa.tenant"] == TENANT
    assert turn.attributes["cpa.outcome"] == "done"
    assert turn.attributes["cpa.route"] == "template"

    children = _tree(finished)
    runs = sorted(children[turn.context.span_id], key=lambda s: s.start_time or 0)
    # Opened, then resumed three times: the approval, t1 and t2 together, t3.
    assert [r.name for r in runs] == ["run open", "run answer", "run answer", "run answer"]
    assert all((turn.start_time or 0) <= (r.start_time or 0) for r in runs)
    assert all((r.end_time or 0) <= (turn.end_time or 0) for r in runs)
    first_nodes = [
        s.name for s in sorted(children[runs[0].context.span_id], key=lambda s: s.start_time or 0)
    ]
    assert first_nodes == ["intake", "intent", "route", "template", "check", "approve"]
    for node in children[runs[0].context.span_id]:
        assert (node.attributes or {})["cpa.conversation_id"] == cid
        assert (node.attributes or {})["cpa.tenant"] == TENANT

    # After the approval: execute, whose ToDos t1 and t2 run side by side and wait, t3 blocked.
    (execute,) = [s for s in children[runs[1].context.span_id] if s.name == "execute"]
    todos = {s.attributes["cpa.todo.id"]: s for s in children[execute.context.span_id]}  # type: ignore[index]
    assert set(todos) == {"t1", "t2", "t3"}
    for todo_id, outcome in (("t1", "waiting"), ("t2", "waiting"), ("t3", "blocked")):
        attributes = todos[todo_id].attributes or {}
        assert attributes["cpa.outcome"] == outcome
        assert attributes["cpa.todo.executor"] == "desktop"
        assert attributes["cpa.conversation_id"] == cid
        assert attributes["cpa.tenant"] == TENANT

    # The assign carries the trace: its traceparent names the ToDo's span that sent it.
    assigns = {
        m["content"]["todo"]["id"]: m for m in driver.messages if m["performative"] == "assign"
    }
    for todo_id in ("t1", "t2"):
        sent_by = todos[todo_id].context
        assert assigns[todo_id]["metadata"]["traceparent"] == (
            f"00-{trace_id:032x}-{sent_by.span_id:016x}-01"
        )
    # The proposal too (the template node made it).
    propose = next(m for m in driver.messages if m["performative"] == "propose")
    assert propose["metadata"]["traceparent"].split("-")[1] == f"{trace_id:032x}"

    # The last run: t3 done, then respond.
    last = {s.name: s for s in children[runs[3].context.span_id]}
    assert set(last) == {"execute", "respond"}
    (t3,) = children[last["execute"].context.span_id]
    assert (t3.attributes or {})["cpa.outcome"] == "done"


async def test_llm_calls_are_child_spans_of_their_node(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    driver = Driver(
        telemetry,
        chat_models={"planner": ScriptedChatModel.script(structured=[steps(CHORE_PLAN)])},
        extra_executors=[RecordingExecutor()],
    )
    await driver.open("Do the chore")
    finished = list(spans.get_finished_spans())
    by_id = {s.context.span_id: s for s in finished}
    (call,) = [s for s in finished if s.name == "llm planner"]
    assert call.parent is not None
    assert by_id[call.parent.span_id].name == "plan"
    assert (call.attributes or {})["cpa.outcome"] == "ok"


async def test_no_exporter_no_endpoint_no_spans() -> None:
    telemetry = Telemetry(TelemetrySettings())
    assert telemetry.provider is None
    assert telemetry.handler is not None and telemetry.handler.tracer is None
    driver = Driver(telemetry)
    await driver.open("Set up a meeting with Anna")
    assert not any("traceparent" in m["metadata"] for m in driver.messages)


# Log lines ---------------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(TelemetrySettings(log_format="json"), stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_uvicorns_log_config_sets_up_the_same_handler_in_worker_processes() -> None:
    # What `serve --workers N` hands uvicorn: each worker applies it with dictConfig.
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logging.config.dictConfig(
            logging_config(TelemetrySettings(log_format="json"), level="warning")
        )
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.WARNING
        assert logging.getLogger("uvicorn.access").propagate
        assert not logging.getLogger("uvicorn.access").handlers
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


async def test_json_lines_of_a_conversation_carry_its_id_and_tenant_not_its_text(
    telemetry: Telemetry, log_lines: io.StringIO
) -> None:
    driver = Driver(telemetry)
    cid = await driver.open("Set up a meeting with Anna about the secret merger")
    await driver.answer_all(cid)
    entries = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    ours = [e for e in entries if e["logger"].startswith("cpa_planner")]
    assert {e["message"] for e in ours} >= {"turn started", "turn ended: done", "todo t3 done"}
    assert all(e["conversation_id"] == cid and e["tenant"] == TENANT for e in ours)
    ended = next(e for e in ours if e["message"] == "turn ended: done")
    request = next(m for m in driver.messages if m["performative"] == "request")
    assert ended["trace_id"] == f"{turn_ids(f'{TENANT}/{cid}', request['id'])[0]:032x}"
    assert ended["intent"] == "meeting" and ended["route"] == "template"
    assert "secret merger" not in log_lines.getvalue()


async def test_request_text_is_logged_only_when_allowed(log_lines: io.StringIO) -> None:
    telemetry = Telemetry(TelemetrySettings(log_request_text=True), tenants=[TENANT])
    driver = Driver(telemetry)
    await driver.open("Take a note: the door code")
    started = [
        json.loads(line) for line in log_lines.getvalue().splitlines() if '"turn started"' in line
    ]
    assert started[-1]["text"] == "Take a note: the door code"


def test_known_secrets_never_reach_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPA_API_KEYS", "acme:acme-key-0123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2pass@db.example:6379/0")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "auth %s, %s, redis %s", None, None)
    record.args = ("acme-key-0123456789", "sk-test-abcdef", "redis://:hunter2pass@db")
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record)
        assert "acme-key-0123456789" not in line
        assert "sk-test-abcdef" not in line
        assert "hunter2pass" not in line
        assert "***" in line


def test_text_lines_say_the_conversation(telemetry: Telemetry) -> None:
    record = logging.LogRecord(
        "cpa_planner.todo", logging.INFO, __file__, 1, "todo t1 done", None, None
    )
    record.conversation_id, record.tenant = "c-1", TENANT
    record.cpa_fields = {"executor": "desktop"}
    line = TextFormatter(secrets=[]).format(record)
    assert (
        line
        == "INFO cpa_planner.todo: todo t1 done [conversation=c-1 tenant=acme executor=desktop]"
    )


# No network when nothing is configured ------------------------------------------------------


class NetworkGuard:
    """Refuses, and records, every connection or name lookup beyond loopback."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[str] = []
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo

        def loopback(address: Any) -> bool:
            if not isinstance(address, tuple):
                return True  # a unix socket
            host = str(address[0])
            return host in ("localhost", "::1") or host.startswith("127.")

        def connect(sock: socket.socket, address: Any) -> None:
            if not loopback(address):
                self.attempts.append(f"connect {address}")
                raise OSError(f"test: no network beyond loopback ({address})")
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            if not loopback(address):
                self.attempts.append(f"connect_ex {address}")
                raise OSError(f"test: no network beyond loopback ({address})")
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host is not None and not loopback((host, 0)):
                self.attempts.append(f"getaddrinfo {host}")
                raise OSError(f"test: no name lookups ({host})")
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_the_guard_catches_a_connection_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = NetworkGuard(monkeypatch)
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    assert guard.attempts


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"LANGSMITH_TRACING": "false", "LANGSMITH_API_KEY": "lsv2-test-key"},
        {"LANGCHAIN_TRACING_V2": "false", "LANGCHAIN_API_KEY": "lsv2-test-key"},
    ],
    ids=["nothing-set", "langsmith-off-with-key", "langchain-off-with-key"],
)
async def test_with_tracing_off_a_conversation_makes_no_connection(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name in (
        "LANGSMITH_TRACING",
        "LANGCHAIN_TRACING_V2",
        "LANGSMITH_API_KEY",
        "LANGCHAIN_API_KEY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    guard = NetworkGuard(monkeypatch)
    telemetry = Telemetry(TelemetrySettings.from_env(), tenants=[TENANT])
    assert telemetry.provider is None
    # LLM calls (scripted), ToDos, an approval, the desktop: every part that could trace.
    driver = Driver(
        telemetry,
        chat_models={
            "planner": ScriptedChatModel.script(structured=[steps(CHORE_PLAN)]),
            "executor": ScriptedChatModel.script(texts=["Done."]),
        },
        extra_executors=[RecordingExecutor()],
    )
    await driver.answer_all(await driver.open("Do the chore"))
    await driver.answer_all(await driver.open("Set up a meeting with Anna"))
    from langchain_core.tracers.langchain import wait_for_all_tracers

    wait_for_all_tracers()
    assert guard.attempts == []


# Sampling --------------------------------------------------------------------------------


async def test_sampled_turns_are_traced_whole_and_the_others_cost_no_span(
    spans: InMemorySpanExporter,
) -> None:
    """OTEL_TRACES_SAMPLER=traceidratio: a turn's runs (here: before and after its desktop
    wait, each through a fresh Telemetry as in another process) decide alike, on the turn's
    derived trace id, as the SDK's own ratio sampler would."""
    from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

    env = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}
    settings = TelemetrySettings.from_env(env)
    assert settings.trace_ratio == 0.5
    sdk = TraceIdRatioBased(0.5)
    first = Telemetry(settings, tenants=[TENANT], exporter=spans)
    driver = Driver(first)
    opened = [await driver.open("Remind me to call Anna tomorrow at 9") for _ in range(12)]
    # The answers reach "another replica": its own handler, the same decisions.
    second = Telemetry(settings, tenants=[TENANT], exporter=spans)
    driver.conversations.telemetry = second
    for cid in opened:
        assert await driver.answer_all(cid) == "done"
    first.shutdown()
    second.shutdown()

    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans.get_finished_spans():
        assert span.context is not None
        by_trace.setdefault(span.context.trace_id, []).append(span)
    requests = {
        m["conversation_id"]: m["id"] for m in driver.messages if m["performative"] == "request"
    }
    kept = 0
    for cid in opened:
        trace_id = turn_ids(f"{TENANT}/{cid}", requests[cid])[0]
        wanted = sdk.should_sample(None, trace_id, "turn").decision is Decision.RECORD_AND_SAMPLE
        got = by_trace.pop(trace_id, [])
        if wanted:
            kept += 1
            names = [s.name for s in got]
            assert names.count("turn") == 1 and names.count("run open") == 1
            assert names.count("run answer") >= 1 and "execute" in names
        else:
            assert got == []
    assert by_trace == {}  # no span outside the turns' traces
    assert 0 < kept < len(opened)  # 12 turns at 0.5: both kinds (fixed ids, not chance)


def test_the_sampler_settings_name_the_variable() -> None:
    from graph.telemetry.settings import TelemetryConfigError

    assert TelemetrySettings.from_env({}).trace_ratio == 1.0
    assert TelemetrySettings.from_env({"OTEL_TRACES_SAMPLER": "always_off"}).trace_ratio == 0.0
    parent_based = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    assert TelemetrySettings.from_env(parent_based).trace_ratio == 1.0
    with pytest.raises(TelemetryConfigError, match=r"OTEL_TRACES_SAMPLER.*always_on"):
        TelemetrySettings.from_env({"OTEL_TRACES_SAMPLER": "jaeger_remote"})
    for bad in ("1.5", "-0.1", "half"):
        with pytest.raises(TelemetryConfigError, match="OTEL_TRACES_SAMPLER_ARG"):
            TelemetrySettings.from_env({**parent_based, "OTEL_TRACES_SAMPLER_ARG": bad})
