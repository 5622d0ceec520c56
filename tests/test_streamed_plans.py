"""Streamed plans: steps that need no approval start while the planner is still writing.

The planner model is scripted and streams its answer in pieces (tests/support/scripted.py); a test
holds the stream at a point of its choosing (`between`) until what it expects has happened,
so "started while the plan was being written" is shown by order, never by timing.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from cli.view import ConversationModel
from graph.conversations import Conversations
from graph.plan_stream import PartialPlan
from lam import Plan
from nodes.early_start import fingerprint
from tests.support.executors import MemoryJournal, RecordingExecutor
from tests.support.planner_harness import Conversation, performatives, services
from tests.support.scripted import ScriptedChatModel, cut_off, steps

REQUEST = "Look up the figures, sum them up and mail the total"
WAIT_S = 10.0  # a safety net: the awaited event happens within milliseconds


def _step(todo_id: str, executor: str, **more: Any) -> dict[str, Any]:
    return {"id": todo_id, "title": f"Step {todo_id}", "executor": executor, **more}


#: t1 and t2 only read (the `work` executor changes nothing); t3 sends (needs approval).
PLAN = steps(
    {
        "goal": "Mail the total",
        "todos": [
            _step("t1", "work"),
            _step("t2", "work", depends_on=["t1"]),
            _step("t3", "send", depends_on=["t2"]),
        ],
    }
)


def written_steps(text: str) -> int:
    """How many steps the text so far has begun."""
    return text.count('"title"')


def hold_until(steps_begun: int, happened: Callable[[], bool]) -> Any:
    """A `between` hook: once `steps_begun` steps have begun, wait until `happened()`."""

    async def between(text: str) -> None:
        if written_steps(text) < steps_begun:
            return
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while not happened():
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"not seen while step {steps_begun} was being written")
            await asyncio.sleep(0.005)

    return between


def streaming(*answers: Any, between: Any = None, chars: int = 16) -> ScriptedChatModel:
    return ScriptedChatModel.script(structured=answers, stream_chars=chars, between=between)


def executors() -> tuple[RecordingExecutor, RecordingExecutor]:
    return RecordingExecutor(name="work"), RecordingExecutor(name="send", effect="change")


# -- reading the answer as it grows ------------------------------------------------------------


def test_a_step_is_complete_once_the_next_has_begun_or_the_answer_ended() -> None:
    import json

    text = json.dumps(PLAN)
    partial = PartialPlan()
    seen: list[tuple[int, str]] = []
    for end in range(1, len(text) + 1):
        for step in partial.feed(text[:end]):
            seen.append((end, step["title"]))
    # Each step once, in order, and only when the next one had begun.
    assert [title for _, title in seen] == ["Step t1", "Step t2"]
    for (end, _), begun in zip(seen, (2, 3), strict=True):
        assert written_steps(text[:end]) >= begun - 1 and text[:end].count("{") > begun
    assert [s["title"] for s in partial.close()] == ["Step t3"]
    assert partial.goal == "Mail the total"
    # A retried call that writes the same answer again returns no step twice.
    assert partial.feed(text[:40]) == [] and partial.close(text) == []


def test_the_fingerprint_names_what_runs_not_where_it_stands() -> None:
    plan = Plan.model_validate(
        {
            "goal": "g",
            "todos": [
                {"id": "t1", "title": "a", "executor": "work"},
                {"id": "t2", "title": "b", "executor": "work", "depends_on": ["t1"]},
            ],
        }
    )
    moved = Plan.model_validate(
        {
            "goal": "g",
            "todos": [
                {"id": "t1", "title": "new first", "executor": "work"},
                {"id": "t2", "title": "a", "executor": "work"},
                {"id": "t3", "title": "b", "executor": "work", "depends_on": ["t2"]},
            ],
        }
    )
    a, b = plan.todos
    fa = fingerprint(a, {}, "r1")
    fb = fingerprint(b, {"t1": fa}, "r1")
    assert fingerprint(moved.todos[1], {}, "r1") == fa
    assert fingerprint(moved.todos[2], {"t2": fa}, "r1") == fb
    assert fingerprint(moved.todos[0], {}, "r1") != fa
    assert fingerprint(a, {}, "r2") != fa  # another request: never the same step


# -- through the graph -----------------------------------------------------------------------------


async def test_steps_that_need_no_approval_start_while_the_plan_is_written() -> None:
    work, send = executors()
    # The stream stops while step 3 is being written until step 1 has started and ended
    # and step 2 has started: both were dispatched before the plan was complete.
    planner = streaming(
        PLAN,
        between=hold_until(3, lambda: ("end", "t1") in work.events and work.runs("t2") == 1),
    )
    conv = Conversation(services(models={"planner": planner}, executors=[work, send]))
    state = await conv.start(REQUEST)

    # t3 sends: it waits for the person; what only reads has run and is in the plan.
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose"
    assert [t.status for t in state["plan"].todos] == ["done", "done", "pending"]
    assert state["plan"].todos[1].output == {"did": "t2", "saw": ["t1"]}
    assert send.events == []
    log = performatives(state)
    # The early steps' messages follow the proposal in the log; their timestamps say they
    # happened before it, while the plan was written.
    assert [p for p in log if p in ("propose", "assign", "done")] == [
        "propose",
        "assign",
        "done",
        "assign",
        "done",
    ]
    stamps = {
        (m["performative"], m["content"].get("todo", {}).get("id")): m["timestamp"]
        for m in state["lam"]
    }
    assert stamps[("assign", "t2")] < stamps[("propose", None)]
    # The proposal shows the plan as written; the approval flag comes from the effect.
    proposed = question.value["content"]["plan"]["todos"]
    assert [t["status"] for t in proposed] == ["pending"] * 3
    assert [t["requires_approval"] for t in proposed] == [False, False, True]

    state = await conv.resume({question.id: "agree"})
    assert state["status"] == "done"
    assert [t.status for t in state["plan"].todos] == ["done"] * 3
    assert (work.runs("t1"), work.runs("t2"), send.runs("t3")) == (1, 1, 1)
    assigns = [m for m in state["lam"] if m["performative"] == "assign"]
    assert [m["content"]["todo"]["id"] for m in assigns] == ["t1", "t2", "t3"]
    assert len({m["id"] for m in state["lam"]}) == len(state["lam"])


async def test_with_stream_plans_off_nothing_starts_before_the_whole_plan() -> None:
    work, send = executors()
    planner = streaming(PLAN)
    svc = services(models={"planner": planner}, executors=[work, send], stream_plans=False)
    conv = Conversation(svc)
    state = await conv.start(REQUEST)
    assert [t.status for t in state["plan"].todos] == ["pending"] * 3
    assert work.events == [] and "assign" not in performatives(state)
    await conv.approve_plan()
    assert (work.runs("t1"), work.runs("t2"), send.runs("t3")) == (1, 1, 1)


async def test_a_plan_that_needs_no_approval_runs_whole_inside_the_planning_step() -> None:
    work, _ = executors()
    plan = steps(
        {
            "goal": "Read three things",
            "todos": [
                _step("t1", "work"),
                _step("t2", "work"),
                _step("t3", "work", depends_on=["t1", "t2"]),
            ],
        }
    )
    conv = Conversation(services(models={"planner": streaming(plan)}, executors=[work]))
    state = await conv.start(REQUEST)
    assert state["status"] == "done"
    assert [work.runs(t) for t in ("t1", "t2", "t3")] == [1, 1, 1]
    # The last step was dispatched as the answer closed, by the planning step itself.
    starts = [m for m in conv.custom if m.get("lam", {}).get("performative") == "assign"]
    assert [m["lam"]["content"]["todo"]["id"] for m in starts] == ["t1", "t2", "t3"]


async def test_a_repeated_step_is_neither_started_early_nor_kept_in_the_plan() -> None:
    work, _ = executors()
    plan = steps(
        {
            "goal": "Read one thing and use it",
            "todos": [
                _step("t1", "work", title="Read it"),
                _step("t2", "work", title="Read it"),  # the same step again
                _step("t3", "work", depends_on=["t2"]),
            ],
        }
    )
    conv = Conversation(services(models={"planner": streaming(plan)}, executors=[work]))
    state = await conv.start("Look up the figures")
    assert state["status"] == "done"
    # t3 depends on the step t2 repeats; t2 ran nowhere.
    assert [(t.id, t.depends_on) for t in state["plan"].todos] == [("t1", []), ("t3", ["t1"])]
    assert [work.runs(t) for t in ("t1", "t2", "t3")] == [1, 0, 1]


async def test_approval_policy_always_starts_nothing_early() -> None:
    work, send = executors()
    svc = services(
        models={"planner": streaming(PLAN)},
        executors=[work, send],
        approval_policy="always",
    )
    conv = Conversation(svc)
    state = await conv.start(REQUEST)
    assert work.events == [] and [t.status for t in state["plan"].todos] == ["pending"] * 3


async def test_a_plan_invalid_at_the_end_is_repaired_without_running_a_step_twice() -> None:
    work, send = executors()
    # The first answer's last step names a tool nobody has: `check` sends it back. Step 1
    # had started by then; the repaired plan keeps it (now as step 2, after a new step).
    bad = steps(
        {
            "goal": "Mail the total",
            "todos": [_step("t1", "work"), _step("t2", "no_such_tool", depends_on=["t1"])],
        }
    )
    repaired = steps(
        {
            "goal": "Mail the total",
            "todos": [
                {"id": "t1", "title": "Something new", "executor": "work"},
                _step("t2", "work", title="Step t1"),
                _step("t3", "send", depends_on=["t2", "t1"]),
            ],
        }
    )
    planner = streaming(bad, repaired, between=hold_until(2, lambda: ("end", "t1") in work.events))
    conv = Conversation(services(models={"planner": planner}, executors=[work, send]))
    state = await conv.start(REQUEST)
    failures = [m for m in state["lam"] if m["performative"] == "failure"]
    assert failures[0]["content"]["error"]["code"] == "invalid_plan"
    # The step written again as t2 kept t1's result; only the new step ran.
    assert work.events.count(("start", "t1")) == 2  # the old t1, then the new step t1
    assert work.events.count(("start", "t2")) == 0
    todos = state["plan"].todos
    assert [t.status for t in todos] == ["done", "done", "pending"]
    assert todos[1].output == {"did": "t1", "saw": []}
    await conv.approve_plan()
    assert send.runs("t3") == 1


async def test_an_answer_cut_off_after_an_early_step_keeps_its_result() -> None:
    import json

    work, send = executors()
    text = json.dumps(PLAN)
    cut = cut_off(text[: text.index('"Step t3"')])  # steps 1 and 2 complete, 3 begun
    planner = streaming(cut, PLAN)
    conv = Conversation(services(models={"planner": planner}, executors=[work, send]))
    state = await conv.start(REQUEST)
    codes = [m["content"]["error"]["code"] for m in state["lam"] if m["performative"] == "failure"]
    assert codes == ["llm_truncated"]
    # Steps 1 and 2 ran while the cut-off answer streamed; the second answer reused them.
    assert (work.runs("t1"), work.runs("t2")) == (1, 1)
    assert [t.status for t in state["plan"].todos] == ["done", "done", "pending"]


async def test_after_a_crash_mid_stream_another_answer_gets_no_other_steps_result() -> None:
    work, _ = executors()
    first = steps(
        {
            "goal": "g",
            "todos": [_step("t1", "work", title="Alpha"), _step("t2", "work"), _step("t3", "work")],
        }
    )
    # Asked again after the crash, the model writes another first step (same place, same
    # executor): the result saved for "Alpha" at that place must not become "Beta"'s.
    second = steps(
        {
            "goal": "g",
            "todos": [
                _step("t1", "work", title="Beta"),
                _step("t2", "work"),
                _step("t3", "work", depends_on=["t1"]),
            ],
        }
    )
    held = asyncio.Event()

    def ended() -> bool:
        return ("end", "t1") in work.events and ("end", "t2") in work.events

    async def between(text: str) -> None:
        if written_steps(text) < 3:
            return
        while not ended():  # noqa: ASYNC110  (a plain list, polled)
            await asyncio.sleep(0.005)
        held.set()
        await asyncio.Event().wait()  # the stream stops here until the "crash"

    planner = ScriptedChatModel.script(structured=[first, second], stream_chars=16, between=between)
    svc = services(models={"planner": planner}, executors=[work])
    conv = Conversation(svc)
    run = asyncio.create_task(conv.start(REQUEST))
    await asyncio.wait_for(held.wait(), 60)  # a safety net: the first run pays the imports
    await asyncio.sleep(0.05)  # let the last pending write land
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    again = Conversation(svc, checkpointer=conv.checkpointer)
    again.thread_id, again.config = conv.thread_id, conv.config
    planner._between = None  # the second answer streams through
    state = await again.carry_on()
    assert state["status"] == "done"
    # t2 is the same step: its saved result is taken. t1 is another step: it runs (in
    # `execute`), and so does t3, which depends on it.
    assert [work.runs(t) for t in ("t1", "t2", "t3")] == [2, 1, 1]
    assert [t.title for t in state["plan"].todos] == ["Beta", "Step t2", "Step t3"]
    assert all(t.status == "done" for t in state["plan"].todos)


# -- what a person watching sees while the plan runs inside `plan` ---------------------------


@dataclass
class GatedJournal(MemoryJournal):
    """The executor's journal, whose held ToDos go on once the test opens their gate."""

    opened: set[str] = field(default_factory=set)

    async def is_open(self, todo_id: str) -> bool:
        return todo_id in self.opened


async def seen(what: str, check: Callable[[], Any]) -> Any:
    """`check()`'s first true value (awaited if need be), polled: a safety net, no timing."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        found = check()
        found = await found if inspect.isawaitable(found) else found
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"never seen: {what}")
        await asyncio.sleep(0.01)


async def test_a_streamed_plan_is_seen_with_its_steps_states_while_it_runs() -> None:
    """With nothing to approve the whole plan runs inside `plan`, whose update (the plan,
    its `propose`) only comes when every step has ended. Meanwhile the conversation's view
    (any process: it reads the checkpoint) and the terminal's (the run's stream) show the
    plan as written and each step's state."""
    journal = GatedJournal()
    work = RecordingExecutor(name="work", journal=journal, hold=frozenset({"t1", "t2", "t3"}))
    plan = steps(
        {
            "goal": "Read three things",
            "todos": [
                _step("t1", "work"),
                _step("t2", "work", depends_on=["t1"]),
                _step("t3", "work"),
            ],
        }
    )
    conv = Conversation(services(models={"planner": streaming(plan)}, executors=[work]))
    convs = Conversations(conv.graph, conv.checkpointer)
    cid = conv.thread_id
    terminal = ConversationModel()

    async def run() -> None:
        def news(event: dict[str, Any]) -> None:
            terminal.activity(event, time.time())

        async for message in convs.stream(cid, convs.opening(REQUEST), news):
            terminal.feed(message)

    running = asyncio.create_task(run())

    async def statuses() -> dict[str, str] | None:
        view = await convs.view(cid)
        if view.plan is None or len(view.plan["todos"]) < 3:
            return None
        return {t["id"]: t["status"] for t in view.plan["todos"]}

    # The answer is whole; t1 and t3 have started and are held: the plan is seen.
    await seen("t1 and t3 started", lambda: {("start", "t1"), ("start", "t3")} <= {*work.events})
    assert await seen("the whole plan", statuses) == {
        "t1": "running",
        "t2": "pending",
        "t3": "running",
    }
    view = await convs.view(cid)
    assert view.status == "running" and view.plan is not None
    assert view.plan["goal"] == "Read three things"
    assert [t["title"] for t in view.plan["todos"]] == ["Step t1", "Step t2", "Step t3"]
    assert "propose" not in [m["performative"] for m in view.messages]
    Plan.model_validate(view.plan)  # a plan as any other (the console's `/effects` reads it)
    shown = {r.id: (r.title, r.status) for r in terminal.todos.values()}
    assert shown == {
        "t1": ("Step t1", "running"),
        "t2": ("Step t2", "pending"),
        "t3": ("Step t3", "running"),
    }
    assert terminal.goal == "Read three things"

    # t1 ends: it is done (its result is in the view), t2 starts.
    journal.opened.add("t1")
    await seen("t2 started", lambda: ("start", "t2") in work.events)

    async def t1_done() -> dict[str, str] | None:
        now = await statuses()
        return now if now is not None and now["t1"] == "done" else None

    assert await seen("t1 done", t1_done) == {"t1": "done", "t2": "running", "t3": "running"}
    view = await convs.view(cid)
    assert view.plan is not None and view.plan["todos"][0]["output"] == {"did": "t1", "saw": []}
    assert {r.id: r.status for r in terminal.todos.values()} == {
        "t1": "done",
        "t2": "running",
        "t3": "running",
    }
    assert not running.done()

    # The end: the state's plan is the one seen, every step done; the terminal kept the
    # steps' states and times through the plan's `propose`.
    journal.opened |= {"t2", "t3"}
    await asyncio.wait_for(running, WAIT_S)
    view = await convs.view(cid)
    assert view.status == "done" and view.plan is not None
    assert [(t["id"], t["title"], t["status"]) for t in view.plan["todos"]] == [
        ("t1", "Step t1", "done"),
        ("t2", "Step t2", "done"),
        ("t3", "Step t3", "done"),
    ]
    assert [r.status for r in terminal.todos.values()] == ["done"] * 3
    assert all(r.started is not None and r.ended is not None for r in terminal.todos.values())
    assert (work.runs("t1"), work.runs("t2"), work.runs("t3")) == (1, 1, 1)
