"""The front door (docs/front-door.md): what each kind of request gets, end to end through the
graph, with scripted chat models that record what they were asked."""

from __future__ import annotations

from typing import Any

import pytest

from lam import LAMMessage, MessageFactory, Plan
from tests.support.executors import RecordingExecutor
from tests.support.planner_harness import Conversation, services
from tests.support.scripted import ScriptedChatModel, UncallableChatModel, steps

NO_LLM = {"router": UncallableChatModel(), "planner": UncallableChatModel()}
FORBIDDEN = {**NO_LLM, "executor": UncallableChatModel()}


def _answer(state: dict[str, Any]) -> str:
    answer = state["lam"][-1]
    assert answer["performative"] == "inform" and answer["content"]["topic"] == "answer"
    return str(answer["content"]["text"])


def _route(state: dict[str, Any]) -> dict[str, Any]:
    routes = [m for m in state["lam"] if m["performative"] == "route"]
    assert len(routes) == 1
    return dict(routes[0]["content"])


def _plan_call_prompt(planner: ScriptedChatModel) -> str:
    kind, schema, messages = planner.calls[0]
    assert kind == "structured" and schema == "PlanDraft"
    return "\n".join(str(m.content) for m in messages)


def _todos(*titles: str, executor: str = "work") -> list[dict[str, Any]]:
    return [{"id": f"t{n}", "title": t, "executor": executor} for n, t in enumerate(titles, 1)]


def _undecided(svc: Any, text: str) -> None:
    decision = svc.intents.decide(text)
    assert decision.intent is None and decision.compound is None, (
        f"precondition: nothing decides {text!r} without an LLM ({decision.reason})"
    )


# -- several actions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "actions"),
    [
        ("Find a free slot with Tom next week, book it and email him the agenda", 3),
        ("Book a table, then send Anna the address and set an alarm", 3),
        ("Buch den Tisch und schick Anna die Adresse", 2),
    ],
)
async def test_a_compound_request_gets_one_llm_plan_covering_every_action(
    text: str, actions: int
) -> None:
    plan = {"goal": "all of it", "todos": _todos(*(f"step {n}" for n in range(actions)))}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    work = RecordingExecutor()
    svc = services(models={"router": UncallableChatModel(), "planner": planner}, executors=[work])
    decision = svc.intents.decide(text)
    assert decision.intent is None and decision.compound is not None
    assert len(decision.compound.parts) == actions

    state = await Conversation(svc).start(text)

    route = _route(state)
    assert route["target"] == "planner" and route["reason"].startswith("compound:")
    prompt = _plan_call_prompt(planner)
    for part in decision.compound.parts:
        assert part in prompt  # every action named to the planner
    for hint in decision.hints:
        assert hint in prompt
    assert state["status"] == "done"
    assert work.runs("t1") == work.runs(f"t{actions}") == 1


async def test_a_plan_that_drops_an_action_goes_back_for_repair() -> None:
    text = "Find a free slot with Tom next week, book it and email him the agenda"
    short = {"goal": "slot", "todos": _todos("Check availability", "Book it")}
    full = {"goal": "slot", "todos": _todos("Check availability", "Book it", "Email agenda")}
    planner = ScriptedChatModel.script(structured=[steps(short), steps(full)])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[RecordingExecutor()],
    )

    state = await Conversation(svc).start(text)

    assert planner.remaining == 0 and state["repairs"] == 1
    repair_prompt = str(planner.calls[1][2][-1].content)
    assert "3 actions" in repair_prompt
    assert len(Plan.model_validate(state["plan"]).todos) == 3


# -- one action, decided without an LLM ---------------------------------------------------


async def test_a_rule_matched_single_request_makes_no_llm_call() -> None:
    conv = Conversation(services(models=FORBIDDEN))  # any LLM call fails the test
    state = await conv.start("Remind me to call Anna tomorrow at 9")
    assert state["intent"]["source"] == "rules"
    assert _route(state)["target"] == "template"
    # Adding the reminder changes the reminders app: the person approves first.
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose"
    state = await conv.resume({question.id: "agree"})
    (waiting,) = await conv.interrupts()
    assert waiting.value["performative"] == "assign"
    assign = LAMMessage.from_dict(waiting.value)
    done = MessageFactory("cpa-desktop", assign.conversation_id).done(assign, "added").to_dict()
    state = await conv.resume({waiting.id: done})
    assert state["status"] == "done" and "added" in _answer(state)


@pytest.mark.parametrize(
    "text",
    [
        "What's on my calendar tomorrow?",
        "Do I have meetings today?",
        "Welche Erinnerungen habe ich?",
        "What's on my todo list?",
        "Habe ich neue Mails?",
    ],
)
async def test_a_read_only_query_gets_a_plan_with_nothing_to_approve(text: str) -> None:
    conv = Conversation(services(models=FORBIDDEN, approval_policy="flagged"))
    state = await conv.start(text)

    assert state["intent"]["read_only"] is True
    assert _route(state)["target"] == "template"
    plan = Plan.model_validate(state["plan"])
    assert not any(t.requires_approval for t in plan.todos)
    # Straight to work: the first thing waiting is the desktop agent, not an approval.
    waiting = await conv.interrupts()
    assert waiting and all(w.value["performative"] == "assign" for w in waiting)


async def test_a_request_that_changes_files_asks_before_anything_runs() -> None:
    conv = Conversation(services(models=FORBIDDEN))
    state = await conv.start("Delete all files in my Documents folder")
    assert state["intent"]["intent"] == "files"
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose"
    assert question.value["receiver"] == "user"


async def test_a_german_request_gets_german_titles_and_a_german_answer() -> None:
    conv = Conversation(services(models=FORBIDDEN))
    state = await conv.start("Erinnere mich morgen um 9 an den Anruf bei Anna")
    assert state["intent"]["language"] == "de"
    english = services(models=FORBIDDEN).intents.template_for(
        "reminder", "x", language="en", read_only=False
    )
    assert english is not None
    titles = [t.title for t in Plan.model_validate(state["plan"]).todos]
    assert titles != [t.title for t in english.plan.todos]
    (question,) = await conv.interrupts()
    await conv.resume({question.id: "agree"})
    (waiting,) = await conv.interrupts()
    assign = LAMMessage.from_dict(waiting.value)
    done = MessageFactory("cpa-desktop", assign.conversation_id).done(assign, "ok").to_dict()
    state = await conv.resume({waiting.id: done})
    assert state["status"] == "done"
    assert "erledigt" in _answer(state)


# -- what the router model chose only hints -----------------------------------------------


async def test_the_router_choice_is_a_hint_for_the_planner_never_a_template() -> None:
    text = "Could you sort things out with Tom about next week"
    router = ScriptedChatModel.script(structured=[{"intent": "calendar", "confidence": 0.8}])
    plan = {"goal": "sort it", "todos": _todos("Ask Tom", "Agree on a time")}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(models={"router": router, "planner": planner}, executors=[RecordingExecutor()])
    _undecided(svc, text)

    state = await Conversation(svc).start(text)

    assert state["intent"]["intent"] == "calendar" and state["intent"]["source"] == "llm"
    assert _route(state)["target"] == "planner"
    assert "calendar" in _plan_call_prompt(planner)
    assert [t.title for t in state["plan"].todos] == ["Ask Tom", "Agree on a time"]


async def test_a_task_no_intent_fits_is_planned() -> None:
    text = (
        "Organise a three-day trip to Lisbon with flights, a hotel near the river "
        "and a museum visit"
    )
    router = ScriptedChatModel.script(structured=[{"intent": "other_task", "confidence": 0.9}])
    plan = {"goal": "Lisbon", "todos": _todos("Flights", "Hotel", "Museum")}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(models={"router": router, "planner": planner}, executors=[RecordingExecutor()])

    state = await Conversation(svc).start(text)

    assert _route(state)["target"] == "planner"
    assert planner.remaining == 0
    assert state["status"] == "done"
    assert "cannot plan" not in _answer(state)


@pytest.mark.parametrize("confidence", [10000.0, -3.0, 0.0])
async def test_a_router_confidence_out_of_range_neither_fails_nor_decides(
    confidence: float,
) -> None:
    text = "Could you sort things out with Tom about next week"
    router = ScriptedChatModel.script(
        structured=[{"intent": "smalltalk", "confidence": confidence}]
    )
    planner = ScriptedChatModel.script(structured=[steps({"goal": "g", "todos": _todos("Ask")})])
    svc = services(models={"router": router, "planner": planner}, executors=[RecordingExecutor()])
    _undecided(svc, text)

    state = await Conversation(svc).start(text)

    assert 0.0 <= state["intent"]["confidence"] <= 1.0
    if confidence > 1:  # clamped to 1: a confident small-talk choice is answered directly
        assert _route(state)["target"] == "answer"
    else:  # below the floor: no decision, so the planner plans it
        assert _route(state)["target"] == "planner" and state["status"] == "done"


async def test_a_router_without_a_usable_answer_falls_back_to_the_planner() -> None:
    text = "Could you sort things out with Tom about next week"
    router = ScriptedChatModel.script(structured=[ValueError("no tool call")])
    planner = ScriptedChatModel.script(structured=[steps({"goal": "g", "todos": _todos("Ask")})])
    svc = services(models={"router": router, "planner": planner}, executors=[RecordingExecutor()])
    _undecided(svc, text)

    state = await Conversation(svc).start(text)

    assert state["intent"]["router_error"]
    assert _route(state)["target"] == "planner" and state["status"] == "done"


# -- answered directly --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "not_expected"),
    [
        ("Hallo, guten Morgen!", None),
        ("Hi, good morning!", None),
        ("Danke!", "Hallo"),
        ("Thanks a lot, bye!", "Hello"),
        ("Tschüss, bis morgen", "Hallo"),
    ],
)
async def test_greetings_and_thanks_never_need_an_llm(text: str, not_expected: str | None) -> None:
    state = await Conversation(services(models=FORBIDDEN)).start(text)
    assert state["intent"]["intent"] == "smalltalk" and state["status"] == "done"
    assert _route(state)["target"] == "answer"
    answer = _answer(state)
    assert answer
    if not_expected:
        assert not_expected not in answer


async def test_nothing_to_do_gets_a_short_answer_saying_what_the_planner_can_do() -> None:
    # No LLM configured: a word check tells gibberish from a task that needs the planner.
    state = await Conversation(services()).start("asdfgh qwertz")
    assert _route(state)["target"] == "answer" and state["status"] == "done"
    assert "calendar" in _answer(state)


async def test_the_router_can_say_there_is_nothing_to_do() -> None:
    text = "Could you sort things out with Tom about next week"
    router = ScriptedChatModel.script(structured=[{"intent": "nothing_to_do", "confidence": 0.9}])
    svc = services(models={"router": router, "planner": UncallableChatModel()})
    _undecided(svc, text)
    state = await Conversation(svc).start(text)
    assert _route(state)["target"] == "answer" and "reminder" in _answer(state)


async def test_a_task_without_any_llm_configured_names_the_settings() -> None:
    text = "Organise a three-day trip to Lisbon with flights, a hotel and a museum visit"
    state = await Conversation(services()).start(text)
    assert state["status"] == "failed"
    error = state["result"]["error"]
    assert error["code"] == "llm_not_configured"
    assert "CPA_LLM_BASE_URL" in error["message"] and "CPA_LLM_MODEL" in error["message"]
    assert _answer(state).startswith("Sorry")


# -- a look-up and a change in one request ------------------------------------------------


async def test_find_and_shred_goes_to_the_planner_with_both_actions() -> None:
    text = "Find my tax files and shred them"
    decision = services(models=NO_LLM).intents.decide(text)
    assert decision.intent is None and not decision.read_only
    assert decision.compound is not None
    assert decision.compound.parts == ("Find my tax files", "shred them")
    plan = {"goal": "tax files", "todos": _todos("Find the tax files", "Shred them")}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[RecordingExecutor()],
    )

    state = await Conversation(svc).start(text)

    route = _route(state)
    assert route["target"] == "planner" and route["reason"].startswith("compound:")
    prompt = _plan_call_prompt(planner)
    assert "1. Find my tax files" in prompt and "2. shred them" in prompt
    # "them" is what the finding gives: the shredding's step must wait for it.
    assert state["intent"]["compound"]["follows"] == [False, True]
    assert "2. shred them (uses what action 1 gives" in prompt
    assert "files" in prompt  # the intent seen, as a hint
