"""The terminal view of a conversation, drawn without a terminal (rich at a fixed width)."""

from __future__ import annotations

import io

from rich.console import Console

from cli.view import ConversationModel, TodoRow, render
from lam import MessageFactory, Plan, ToDo

REQUEST = "Remind me to call Anna tomorrow at 9"


def drawn(model: ConversationModel, width: int) -> str:
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(render(model, now=1.5))
    return console.export_text()


def waiting_model() -> ConversationModel:
    model = ConversationModel(conversation_id="3f1c", request=REQUEST, intent="reminder")
    model.goal = f"Set a reminder: {REQUEST}"
    model.todos = {
        "t1": TodoRow("t1", "Draft the reminder", "template", [], "done", 0.0, 0.1, "Reminder"),
        "t2": TodoRow(
            "t2",
            "Add the reminder in the reminders app",
            "desktop",
            ["t1"],
            "waiting",
            0.5,
            waiting_for="you (desktop agent)",
        ),
    }
    return model


def test_at_80_columns_nothing_is_cut() -> None:
    text = drawn(waiting_model(), 80)
    assert "…" not in text
    assert "(desktop agent)" in text and "1.0s" in text and "0.1s" in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_a_refused_plan_is_shown_as_not_run() -> None:
    user, planner = MessageFactory("user", "3f1c"), MessageFactory("planner", "3f1c")
    request = user.request(REQUEST)
    plan = Plan(
        goal=f"Set a reminder: {REQUEST}",
        todos=[
            ToDo(id="t1", title="Draft the reminder", executor="template"),
            ToDo(id="t2", title="Add it", executor="desktop", depends_on=["t1"]),
        ],
    )
    propose = planner.propose("user", plan)
    model = ConversationModel()
    for message in (request, propose, user.refuse(propose, "not today")):
        model.feed(message.to_dict())
    text = drawn(model, 100)
    assert text.count("↷ skipped") == 2 and text.count("plan refused") == 2
    assert "pending" not in text


def test_a_plan_being_written_is_shown_from_the_view_and_kept_through_its_proposal() -> None:
    """A streamed plan (against a server: from the conversation's view mid-`plan`): its
    steps run before its `propose` is logged, which holds them as written (pending)."""
    user, planner = MessageFactory("user", "3f1c"), MessageFactory("planner", "3f1c")
    worker = MessageFactory("executor:work", "3f1c")
    request = user.request(REQUEST)
    plan = Plan(
        goal="Remind",
        todos=[
            ToDo(id="t1", title="Look up the time", executor="work"),
            ToDo(id="t2", title="Add it", executor="desktop", depends_on=["t1"]),
        ],
    )
    live = plan.model_dump(mode="json")
    live["todos"][0]["status"] = "running"
    model = ConversationModel()
    model.sync(
        {"messages": [request.to_dict()], "plan": live, "status": "running"}, [], local=False
    )
    assert model.goal == "Remind"
    assert [(r.id, r.status) for r in model.todos.values()] == [
        ("t1", "running"),
        ("t2", "pending"),
    ]
    assert "Look up the time" in drawn(model, 100)

    assign = planner.assign("executor:work", plan.todos[0], {})
    model.feed(assign.to_dict())
    model.feed(worker.done(assign, "9:00").to_dict())
    model.feed(planner.propose("user", plan).to_dict())  # as written: every step pending
    t1, t2 = model.todos.values()
    assert (t1.status, t1.output, t2.status) == ("done", "9:00", "pending")
    assert t1.started is not None and t1.ended is not None
