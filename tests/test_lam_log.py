"""The one reader of the LAM log (`lam.log`): turns, what each message meant, ToDo states."""

from __future__ import annotations

from typing import Any

from lam import LAMMessage, MessageFactory, Plan, ToDo
from lam.log import LamLog, Meaning

CID = "c-1"
user, planner, desktop = (MessageFactory(a, CID) for a in ("user", "planner", "cpa-desktop"))
PLAN = Plan(
    goal="Meet Anna",
    todos=[
        ToDo(id="t1", title="Check the calendar", executor="desktop"),
        ToDo(id="t2", title="Send the invitation", executor="desktop", depends_on=["t1"]),
    ],
)


def a_turn() -> list[LAMMessage]:
    """A turn: rules decide, a plan (sent back once), approved, t1 done, t2 failed, re-plan."""
    request = user.request("Set up a meeting with Anna")
    first = planner.propose("user", PLAN)
    propose = planner.propose("user", PLAN)
    assign1 = planner.assign("cpa-desktop", PLAN.todos[0], {})
    assign2 = planner.assign("cpa-desktop", PLAN.todos[1], {})
    replanned = Plan(
        goal=PLAN.goal,
        todos=[
            PLAN.todos[0].model_copy(update={"status": "done", "output": "free"}),
            ToDo(id="t3", title="Call Anna instead", executor="human"),
        ],
    )
    return [
        request,
        planner.inform_intent("user", "meeting", 0.9, "rules"),
        planner.route("user", "template", "one action, decided by the rules"),
        first,
        planner.failure("planner", "invalid_plan", "t9 does not exist", in_reply_to=first.id),
        propose,
        user.agree(propose),
        assign1,
        desktop.done(assign1, "free"),
        assign2,
        desktop.failure("planner", "broken", "no mail app", todo_id="t2", in_reply_to=assign2.id),
        planner.propose("user", replanned),
        planner.inform("user", "answer", text="Partly done.", status="failed"),
    ]


def test_a_turn_read_message_by_message() -> None:
    log = LamLog()
    meanings = [entry.meaning for m in a_turn() if (entry := log.add(m.to_dict())) is not None]
    assert meanings == [
        Meaning.REQUEST,
        Meaning.INTENT,
        Meaning.ROUTE,
        Meaning.PLAN,
        Meaning.PLAN_SENT_BACK,
        Meaning.PLAN,
        Meaning.APPROVED,
        Meaning.ASSIGNED,
        Meaning.TODO_DONE,
        Meaning.ASSIGNED,
        Meaning.TODO_FAILED,
        Meaning.REPLAN,
        Meaning.ANSWER,
    ]
    (turn,) = log.turns
    assert turn.intent is not None and (turn.intent.intent, turn.intent.source) == (
        "meeting",
        "rules",
    )
    assert turn.route is not None and turn.route.target == "template"
    assert len(turn.plans) == 3 and turn.replans == 1
    # The re-plan keeps what ran (t1 done, with its times); t3 is new.
    assert {t: s.status for t, s in turn.todos.items()} == {"t1": "done", "t3": "pending"}
    assert turn.todos["t1"].assigned_at is not None and turn.todos["t1"].ended_at is not None
    assert [e.code for e in turn.errors] == ["invalid_plan", "broken"]
    assert turn.failure is None  # no failure of the turn itself
    assert turn.answer_text == "Partly done." and turn.outcome == "failed"


def test_todo_states_follow_assign_done_and_failure() -> None:
    messages = a_turn()[:11]  # up to t2's failure
    turn = LamLog(messages).current
    assert turn is not None
    t1, t2 = turn.todos["t1"], turn.todos["t2"]
    assert (t1.status, t1.output, t1.executor) == ("done", "free", "desktop")
    assert (t2.status, t2.error) == ("failed", "no mail app")
    assert t2.failure is not None and t2.failure.code == "broken"
    assert turn.outcome is None  # no answer yet


def test_a_refused_plan_skips_its_todos_and_the_turn_is_refused() -> None:
    request = user.request("Set up a meeting with Anna")
    propose = planner.propose("user", PLAN)
    answer = planner.inform("user", "answer", text="Nothing done.", status="done")
    turn = LamLog([request, propose, user.refuse(propose, "not today"), answer]).current
    assert turn is not None
    assert turn.refused == "not today" and turn.outcome == "refused"
    assert {s.status for s in turn.todos.values()} == {"skipped"}


def test_turns_seen_messages_and_what_is_no_lam_message() -> None:
    first, second = user.request("one"), user.request("two", metadata={"a2a_task_id": "x/1"})
    junk: dict[str, Any] = {"performative": "refuse", "content": {"reason": "?"}}
    log = LamLog([first.to_dict(), junk, second])
    assert [t.text for t in log.turns] == ["one", "two"] and log.unreadable == 1
    assert log.add(second.to_dict()) is None  # seen: taken once
    assert log.turn_of("a2a_task_id", "x/1") is log.current
    # The current turn alone: the earlier ones are not even read.
    current = LamLog.of_current_turn([first.to_dict(), junk, second.to_dict()])
    assert [t.text for t in current.turns] == ["two"] and current.unreadable == 0


def test_a_message_out_of_shape_means_nothing_and_breaks_nothing() -> None:
    request = user.request("Set up a meeting with Anna")
    bad = {**planner.propose("user", PLAN).to_dict(), "content": {"plan": {"goal": 3}}}
    log = LamLog([request.to_dict()])
    entry = log.add(bad)
    assert entry is not None and entry.meaning is Meaning.OTHER and log.unreadable == 1
    assert log.current is not None and log.current.plan is None
    assert log.add({**bad, "id": "x", "timestamp": "yesterday"}) is None  # not even read
