"""The state's plan (issue 12, item 11): validated once where it enters, never by the nodes.

The nodes read `state["plan"]` as a `lam.Plan` (`graph.plan_channel`); a checkpoint keeps
it as the JSON dict it always was, so checkpoints written before still load and resume.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import InvalidUpdateError
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from benchmarks.plan_turns import counting_validations, registry_text
from graph.builder import build_graph
from lam import Plan
from tests.support.planner_harness import services
from tests.support.scripted import UncallableChatModel

DATA = Path(__file__).resolve().parent / "data"
REGISTRY = DATA / "plan_state_intents.yaml"  # three steps; the third asks for approval
REQUEST = "Please run the steps for the quarterly report"
NO_LLM = {role: UncallableChatModel() for role in ("router", "planner", "executor")}


def _graph(
    registry: Path = REGISTRY, saver: InMemorySaver | None = None
) -> tuple[CompiledStateGraph[Any, Any, Any, Any], InMemorySaver]:
    saver = saver or InMemorySaver()
    svc = services(models=NO_LLM, intents_path=str(registry))
    return build_graph(svc, checkpointer=saver), saver


def _config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}}


async def _interrupt_ids(graph: CompiledStateGraph[Any, Any, Any, Any], thread: str) -> list[str]:
    return [i.id for i in (await graph.aget_state(_config(thread))).interrupts]


# Validated once per turn ------------------------------------------------------------------


@pytest.mark.parametrize("todos", [10, 50])
async def test_a_template_turn_validates_its_plan_once(tmp_path: Path, todos: int) -> None:
    registry = tmp_path / "steps.yaml"
    registry.write_text(registry_text(todos))
    graph, _ = _graph(registry)
    with counting_validations() as count:
        state = await graph.ainvoke({"request": REQUEST}, _config("t"))
    # The template's, as it enters the state. At commit 1e3e47c it was seven: the template
    # filled twice (route, template), then check, approve, execute, its edge and respond.
    assert count[0] == 1
    assert isinstance(state["plan"], Plan)
    assert [t.status for t in state["plan"].todos] == ["done"] * todos
    assert state["status"] == "done"


async def test_a_resumed_turn_validates_the_checkpointed_plan_once() -> None:
    graph, _ = _graph()
    await graph.ainvoke({"request": REQUEST}, _config("t"))
    (question,) = await _interrupt_ids(graph, "t")
    with counting_validations() as count:
        state = await graph.ainvoke(Command(resume={question: "agree"}), _config("t"))
    assert count[0] == 1  # the plan loaded from the checkpoint; the rest of the turn reuses it
    assert state["status"] == "done"
    assert state["plan"].todo("t3").output == "third after second after first: " + REQUEST


# In the checkpoint: the JSON dict, as before -------------------------------------------


async def test_a_checkpoint_holds_the_plan_as_its_json_dict() -> None:
    graph, saver = _graph()
    await graph.ainvoke({"request": REQUEST}, _config("t"))
    saved = await saver.aget_tuple(_config("t"))
    assert saved is not None
    stored = saved.checkpoint["channel_values"]["plan"]
    plan = (await graph.aget_state(_config("t"))).values["plan"]
    # No pydantic object in the saver: any reader (an older version, a script) gets JSON.
    assert type(stored) is dict and stored == plan.model_dump(mode="json")
    assert json.loads(json.dumps(stored)) == stored


async def test_a_conversation_checkpointed_with_a_dict_plan_resumes() -> None:
    records = json.loads((DATA / "dict_plan_checkpoint.json").read_text())
    saver = InMemorySaver()
    await _put_old_checkpoints(saver, records)
    graph, _ = _graph(saver=saver)
    snapshot = await graph.aget_state(_config("dict-plan"))
    plan = snapshot.values["plan"]
    assert isinstance(plan, Plan) and plan.ids == ["t1", "t2", "t3"]
    assert plan.todo("t3").requires_approval
    (question,) = snapshot.interrupts
    assert question.value["performative"] == "propose"

    state = await graph.ainvoke(Command(resume={question.id: "agree"}), _config("dict-plan"))

    assert state["status"] == "done"
    assert [t.status for t in state["plan"].todos] == ["done", "done", "done"]
    assert state["lam"][-1]["content"]["topic"] == "answer"
    assert [m["performative"] for m in state["lam"]].count("request") == 1  # nothing replayed


async def _put_old_checkpoints(saver: InMemorySaver, records: list[dict[str, str]]) -> None:
    """Every checkpoint of the old thread, oldest first, through the public saver API."""
    previous: dict[str, Any] = {}
    for raw in records:
        record = saver.serde.loads_typed((raw["type"], base64.b64decode(raw["data"])))
        checkpoint = record["checkpoint"]
        versions = checkpoint["channel_versions"]
        # Only the channels this checkpoint wrote, as the graph's own `put` passes them.
        changed = {k: v for k, v in versions.items() if previous.get(k) != v}
        first: RunnableConfig = {"configurable": {"thread_id": "dict-plan", "checkpoint_ns": ""}}
        parent: RunnableConfig = record["parent_config"] or first
        saved = await saver.aput(parent, checkpoint, record["metadata"], changed)
        writes: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in record["pending_writes"]:
            writes[task_id].append((channel, value))
        for task_id, task_writes in writes.items():
            await saver.aput_writes(saved, task_writes, task_id)
        previous = versions


# Entering by a state update (Studio, update_state) ------------------------------------


async def test_a_plan_written_by_a_state_update_is_validated() -> None:
    graph, _ = _graph()
    await graph.ainvoke({"request": REQUEST}, _config("t"))
    before = (await graph.aget_state(_config("t"))).values["plan"]
    edited = before.model_dump(mode="json")
    edited["todos"][0]["title"] = "First, edited in Studio"

    await graph.aupdate_state(_config("t"), {"plan": edited})

    after = (await graph.aget_state(_config("t"))).values["plan"]
    assert isinstance(after, Plan) and after.todo("t1").title == "First, edited in Studio"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"todos": [{"id": "t1", "executor": "template"}]}, "todos.0.title: Field required"),
        ({"goal": 7}, "goal: Input should be a valid string"),
        ({"todos": [{"id": "t1", "title": "x", "executor": "template", "sneaky": 1}]}, "sneaky"),
    ],
)
async def test_a_state_update_with_a_bad_plan_is_refused_and_changes_nothing(
    change: dict[str, Any], problem: str
) -> None:
    graph, _ = _graph()
    await graph.ainvoke({"request": REQUEST}, _config("t"))
    before = await graph.aget_state(_config("t"))
    bad = {**before.values["plan"].model_dump(mode="json"), **change}

    with pytest.raises(InvalidUpdateError, match="not a valid plan") as refused:
        await graph.aupdate_state(_config("t"), {"plan": bad})

    assert problem in str(refused.value)
    after = await graph.aget_state(_config("t"))
    assert after.config == before.config  # no checkpoint written
    assert after.values["plan"] == before.values["plan"]
    # And the conversation goes on from where it was.
    (question,) = await _interrupt_ids(graph, "t")
    state = await graph.ainvoke(Command(resume={question: "agree"}), _config("t"))
    assert state["status"] == "done"


def test_the_channels_no_value_is_langgraphs() -> None:
    """`graph.plan_channel.MISSING` is had through LangGraph's public API; it must be the very
    sentinel LangGraph passes to `from_checkpoint` for a channel a checkpoint lacks."""
    from langgraph._internal._typing import MISSING as LANGGRAPHS

    from graph.plan_channel import MISSING

    assert MISSING is LANGGRAPHS
