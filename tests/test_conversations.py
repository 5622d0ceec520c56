"""Whole conversations through the planning graph (scripted LLMs, in-memory checkpoints)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lam import LAMMessage, MessageFactory, Performative, Plan
from lam.dag import validate_plan
from tests.support.executors import RecordingExecutor
from tests.support.planner_harness import Conversation, performatives, services
from tests.support.scripted import ScriptedChatModel, UncallableChatModel, steps

# Router and planner fail the test when called; no executor model: answers from templates.
NO_LLM = {"router": UncallableChatModel(), "planner": UncallableChatModel()}


def _answer(state: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = state["lam"][-1]
    assert answer["performative"] == "inform" and answer["content"]["topic"] == "answer"
    return answer


def _desktop_answer(interrupt_value: dict[str, Any], output: Any) -> dict[str, Any]:
    assign = LAMMessage.from_dict(interrupt_value)
    return MessageFactory("cpa-desktop", assign.conversation_id).done(assign, output).to_dict()


def _planned(plan: dict[str, Any], *executors: Any, **settings: Any) -> Conversation:
    """A conversation whose rule-matched request gets `plan` from a scripted planner."""
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    models = {"router": UncallableChatModel(), "planner": planner}
    return Conversation(services(models=models, executors=list(executors), **settings))


@pytest.mark.parametrize(
    "request_text",
    ["Remind me to call Anna tomorrow at 9", "Erinnere mich morgen um 9 an den Anruf bei Anna"],
)
async def test_rule_matched_template_plan_needs_no_llm(request_text: str) -> None:
    conv = Conversation(services(models=NO_LLM))
    state = await conv.start(request_text)

    assert state["intent"]["source"] == "rules"
    assert state["intent"]["intent"] == "reminder"
    # Adding the reminder changes something: the person is asked first (issue 10).
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose" and question.value["receiver"] == "user"
    await conv.approve_plan()
    # The template's desktop ToDo waits for the desktop agent.
    (waiting,) = await conv.interrupts()
    assert waiting.value["performative"] == "assign"
    assert waiting.value["receiver"] == "cpa-desktop"

    state = await conv.resume({waiting.id: _desktop_answer(waiting.value, "reminder created")})
    assert state["status"] == "done"
    plan = Plan.model_validate(state["plan"])
    assert [t.status for t in plan.todos] == ["done"] * len(plan.todos)
    # The template ToDo's text reached the desktop ToDo as a dependency output.
    desktop = next(t for t in plan.todos if t.executor == "desktop")
    assert desktop.output == "reminder created"
    kinds = performatives(state)
    assert kinds[:3] == ["request", "inform", "route"]
    assert kinds.count("propose") == 1 and kinds.count("agree") == 1 and kinds[-1] == "inform"
    assert len({m["id"] for m in state["lam"]}) == len(state["lam"])
    for message in state["lam"]:
        LAMMessage.from_dict(message)  # every logged message is valid LAM
    assert state["messages"][-1].text == _answer(state)["content"]["text"]


async def test_llm_classified_intent_with_llm_plan() -> None:
    text = "Book me a flight to Berlin for the conference"
    router = ScriptedChatModel.script(structured=[{"intent": "web_search", "confidence": 0.7}])
    planner = ScriptedChatModel.script(
        structured=[
            steps(
                {
                    "goal": "Find flights to Berlin",
                    "todos": [
                        {"id": "t1", "title": "Search flights", "executor": "llm"},
                        {"id": "t2", "title": "Compare prices", "executor": "llm"},
                        {
                            "id": "t3",
                            "title": "Write a recommendation",
                            "executor": "llm",
                            "depends_on": ["t1", "t2"],
                        },
                    ],
                }
            )
        ]
    )
    executor = ScriptedChatModel.script(
        texts=["three flights", "cheapest is 99 EUR", "take the 99 EUR one", "All done."]
    )
    svc = services(models={"router": router, "planner": planner, "executor": executor})
    assert svc.intents.decide(text).intent is None, "precondition: nothing decides it"

    state = await Conversation(svc).start(text)

    found = state["intent"]
    assert (found["intent"], found["confidence"], found["source"]) == ("web_search", 0.7, "llm")
    assert state["status"] == "done"
    plan = Plan.model_validate(state["plan"])
    assert {t.id: t.status for t in plan.todos} == {"t1": "done", "t2": "done", "t3": "done"}
    assert _answer(state)["content"]["text"] == "All done."
    # The router saw the registry's intents, and only those plus unknown were allowed.
    kind, _schema, msgs = router.calls[0]
    assert kind == "structured" and "calendar" in msgs[0].text
    # t3's prompt carried its dependencies' outputs.
    t3_prompt = executor.calls[2][2][-1].text
    assert "t1" in t3_prompt and "t2" in t3_prompt


async def test_broken_llm_plan_is_repaired_once() -> None:
    broken = {
        "goal": "Mail the agenda",
        "todos": [
            {"id": "t1", "title": "Draft", "executor": "llm", "depends_on": ["t2"]},
            {"id": "t2", "title": "Send", "executor": "llm", "depends_on": ["t1"]},
        ],
    }
    fixed = {
        "goal": "Mail the agenda",
        "todos": [
            {"id": "t1", "title": "Draft", "executor": "llm"},
            {"id": "t2", "title": "Check", "executor": "llm", "depends_on": ["t1"]},
        ],
    }
    planner = ScriptedChatModel.script(structured=[steps(broken), steps(fixed)])
    executor = ScriptedChatModel.script(texts=["draft", "checked", "Sent."])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner, "executor": executor}
    )

    state = await Conversation(svc).start("Write an email to Tom with the agenda")

    assert state["status"] == "done"
    assert state["repairs"] == 1
    assert planner.remaining == 0
    repair_prompt = planner.calls[1][2][-1].text
    assert "cycle" in repair_prompt and "t1" in repair_prompt and "t2" in repair_prompt
    kinds = performatives(state)
    assert kinds.count("propose") == 2
    check_failure = next(m for m in state["lam"] if m["performative"] == "failure")
    assert check_failure["content"]["error"]["code"] == "invalid_plan"


async def test_plan_still_broken_after_repairs_ends_with_failure() -> None:
    broken = {
        "goal": "x",
        "todos": [
            {"id": "t1", "title": "Loop", "executor": "llm", "depends_on": ["t2"]},
            {"id": "t2", "title": "Back", "executor": "llm", "depends_on": ["t1"]},
        ],
    }
    planner = ScriptedChatModel.script(structured=[steps(broken)] * 3)
    svc = services(models={"router": UncallableChatModel(), "planner": planner}, max_plan_repairs=2)

    state = await Conversation(svc).start("Write an email to Tom with the agenda")

    assert state["status"] == "failed"
    assert planner.remaining == 0
    message = state["result"]["error"]["message"]
    assert "t1" in message and "after 2 repair(s)" in message


async def test_failing_todo_skips_dependents_then_replans() -> None:
    work = RecordingExecutor(fail={"t2"})
    first = {
        "goal": "Prepare the report",
        "todos": [
            {"id": "t1", "title": "Collect", "executor": "work"},
            {"id": "t2", "title": "Fetch numbers", "executor": "work"},
            {"id": "t3", "title": "Chart", "executor": "work", "depends_on": ["t2"]},
            {"id": "t4", "title": "Assemble", "executor": "work", "depends_on": ["t1", "t3"]},
        ],
    }
    # The done t1 is step 1 for the model; its new steps are 2 and 3 (ids t5, t6: unused).
    remaining = {
        "steps": [
            {"title": "Estimate numbers", "description": "", "tool": "work", "after": [1]},
            {"title": "Assemble", "description": "", "tool": "work", "after": [2]},
        ]
    }
    planner = ScriptedChatModel.script(structured=[steps(first), remaining])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[work],
        todo_retries=1,
    )
    conv = Conversation(svc)

    state = await conv.start("Write an email to Tom with the agenda")

    # t2 failed (tried twice), t3 and t4 were never started, t1 ran once across both rounds.
    assert work.runs("t2") == 2
    assert work.runs("t3") == 0 and work.runs("t4") == 0
    assert work.runs("t1") == 1
    assert [work.runs("t5"), work.runs("t6")] == [1, 1]
    plan = Plan.model_validate(state["plan"])
    assert [t.id for t in plan.todos] == ["t1", "t5", "t6"]
    assert all(t.status == "done" for t in plan.todos)
    assert plan.todo("t6").output == {"did": "t6", "saw": ["t5"]}
    assert state["status"] == "done" and state["replans"] == 1
    # The first round's outcome is in the log: the failure, and the skipped ToDos' plan.
    failures = [m for m in state["lam"] if m["performative"] == "failure"]
    assert [f["content"]["todo_id"] for f in failures] == ["t2"]
    replan_prompt = planner.calls[1][2][0].text
    assert '"skipped"' in replan_prompt and "t2 is broken" in replan_prompt
    assert "earlier failure: t2" in _answer(state)["content"]["text"]


async def test_failure_without_replanning_reports_skipped_dependents() -> None:
    work = RecordingExecutor(fail={"t1"})
    plan = {
        "goal": "g",
        "todos": [
            {"id": "t1", "title": "A", "executor": "work"},
            {"id": "t2", "title": "B", "executor": "work", "depends_on": ["t1"]},
            {"id": "t3", "title": "C", "executor": "work"},
        ],
    }
    state = await _planned(plan, work, max_replans=0).start("Write an email to Tom with the agenda")
    result = Plan.model_validate(state["plan"])
    assert [t.status for t in result.todos] == ["failed", "skipped", "done"]
    assert "t1" in (result.todo("t2").error or "")
    assert state["status"] == "failed"


async def test_human_and_desktop_todos_wait_together_and_resume() -> None:
    work = RecordingExecutor()
    plan = {
        "goal": "Book a room",
        "todos": [
            {"id": "t1", "title": "Ask which room", "executor": "human"},
            {"id": "t2", "title": "Open the calendar", "executor": "desktop"},
            {"id": "t3", "title": "Free slots", "executor": "desktop"},
            {"id": "t4", "title": "Book", "executor": "work", "depends_on": ["t1", "t2"]},
            {"id": "t5", "title": "Independent", "executor": "work"},
        ],
    }
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[work],
        max_replans=0,
    )
    conv = Conversation(svc)

    await conv.start("Write an email to Tom with the agenda")
    await conv.approve_plan()  # the desktop steps change something: asked first
    waiting = await conv.interrupts()
    by_todo = {w.value["content"]["todo"]["id"]: w for w in waiting}
    assert sorted(by_todo) == ["t1", "t2", "t3"]
    assert by_todo["t1"].value["receiver"] == "user"
    assert by_todo["t2"].value["receiver"] == "cpa-desktop"
    # Everything that did not wait ran on.
    assert work.runs("t5") == 1 and work.runs("t4") == 0

    # Answer two of three: t4 can run (needs t1, t2); t3 still waits.
    await conv.resume(
        {
            by_todo["t1"].id: "room 4",
            by_todo["t2"].id: _desktop_answer(by_todo["t2"].value, "calendar open"),
        }
    )
    (still,) = await conv.interrupts()
    assert still.value["content"]["todo"]["id"] == "t3"
    assert work.runs("t4") == 1 and work.runs("t5") == 1

    assign = LAMMessage.from_dict(still.value)
    failed = MessageFactory("cpa-desktop", assign.conversation_id).failure(
        "planner", "app_closed", "the calendar app crashed", todo_id="t3", in_reply_to=assign.id
    )
    state = await conv.resume({still.id: failed.to_dict()})

    result = Plan.model_validate(state["plan"])
    assert {t.id: t.status for t in result.todos} == {
        "t1": "done",
        "t2": "done",
        "t3": "failed",
        "t4": "done",
        "t5": "done",
    }
    assert result.todo("t1").output == "room 4"
    assert result.todo("t4").output == {"did": "t4", "saw": ["t1", "t2"]}
    # No finished ToDo ran again across the two resumes.
    assert work.runs("t4") == 1 and work.runs("t5") == 1
    # The desktop's own failure message is in the log, as it was sent.
    assert failed.id in {m["id"] for m in state["lam"]}
    assert len({m["id"] for m in state["lam"]}) == len(state["lam"])


async def test_todos_start_when_their_own_dependencies_finish() -> None:
    # A slow ToDo beside a chain: the chain must not wait for it (no level-by-level steps).
    slow, a, b, c, d = (f"t{n}" for n in range(1, 6))  # the plan's ids, by position
    work = RecordingExecutor(delays={slow: 0.3, a: 0.01, b: 0.01, c: 0.01})
    plan = {
        "goal": "g",
        "todos": [
            {"id": slow, "title": "Slow", "executor": "work"},
            {"id": a, "title": "A", "executor": "work"},
            {"id": b, "title": "B", "executor": "work", "depends_on": [a]},
            {"id": c, "title": "C", "executor": "work", "depends_on": [b]},
            {"id": d, "title": "D", "executor": "work", "depends_on": [slow, c]},
        ],
    }
    conv = _planned(plan, work)
    state = await conv.start("Write an email to Tom with the agenda")

    assert state["status"] == "done"
    order = work.events
    assert order.index(("end", c)) < order.index(("end", slow))
    assert order.index(("start", d)) > order.index(("end", slow))
    # Each ToDo's assign and done were streamed live, as they happened.
    streamed = [
        (
            e["lam"]["performative"],
            e["lam"]["content"].get("todo_id") or e["lam"]["content"].get("todo", {}).get("id"),
        )
        for e in conv.custom
        if "lam" in e
    ]
    assert streamed.index(("done", c)) < streamed.index(("done", slow))


async def test_plans_from_templates_are_valid() -> None:
    svc = services(models=NO_LLM)
    for name in svc.intents.names():
        for language in ("en", "de"):
            for read_only in (False, True):
                filled = svc.intents.template_for(
                    name, "do the thing", language=language, read_only=read_only
                )
                if filled is not None:
                    assert validate_plan(filled.plan, executors=svc.executors.names()) == []


async def test_smalltalk_without_llm_gets_a_canned_reply_in_its_language() -> None:
    state = await Conversation(services()).start("Hallo!")
    assert state["intent"]["intent"] == "smalltalk"
    assert state["status"] == "done"
    assert _answer(state)["content"]["text"] == state["intent"]["reply"]
    assert state["intent"]["language"] == "de" and "Hallo" in state["intent"]["reply"]


async def test_question_without_llm_fails_naming_the_settings() -> None:
    state = await Conversation(services()).start("What is the capital of France?")
    assert state["status"] == "failed"
    message = state["result"]["error"]["message"]
    assert "OPENAI_API_KEY" in message and "OLLAMA_HOST" in message
    assert "CPA_LLM_BASE_URL" in message
    # Like every turn, it ends with the answer, after the failure it explains.
    assert performatives(state)[-2:] == ["failure", "inform"]
    assert _answer(state)["content"]["status"] == "failed"


async def test_unmatched_request_without_llm_fails_naming_the_settings() -> None:
    state = await Conversation(services()).start("Book me a flight to Berlin")
    assert state["status"] == "failed"
    assert state["result"]["error"]["code"] == "llm_not_configured"


@pytest.mark.parametrize("answer", ["refuse", {"performative": "refuse", "reason": "not now"}])
async def test_refused_plan_ends_the_conversation(answer: Any) -> None:
    work = RecordingExecutor()
    plan = {
        "goal": "g",
        "todos": [{"id": "t1", "title": "Send", "executor": "work", "requires_approval": True}],
    }
    conv = _planned(plan, work)
    await conv.start("Write an email to Tom with the agenda")
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose"
    state = await conv.resume({question.id: answer})
    assert work.runs("t1") == 0
    assert state["result"]["refused"]
    assert Performative.REFUSE.value in performatives(state)
    assert _answer(state)["content"]["text"].startswith("Plan not carried out")
    # Its ToDos will never run: skipped (as every view shows them), not left pending.
    assert [(t.status, t.error) for t in state["plan"].todos] == [("skipped", "plan refused")]


async def test_agreed_plan_runs() -> None:
    work = RecordingExecutor()
    plan = {"goal": "g", "todos": [{"id": "t1", "title": "Send", "executor": "work"}]}
    conv = _planned(plan, work, approval_policy="always")
    await conv.start("Write an email to Tom with the agenda")
    (question,) = await conv.interrupts()
    propose = LAMMessage.from_dict(question.value)
    agree = MessageFactory("user", propose.conversation_id).agree(propose)
    state = await conv.resume({question.id: agree.to_dict()})
    assert state["status"] == "done" and work.runs("t1") == 1
    assert agree.id in {m["id"] for m in state["lam"]}


@pytest.mark.parametrize("streamed", [False, True], ids=["execute", "streamed-plan"])
async def test_resume_after_a_crash_mid_execution_reruns_no_finished_todo(streamed: bool) -> None:
    # ToDos finish in an order unlike the plan's: c (fast) before a and b; the crash comes
    # while `slow` still runs. On resume, results must attach to the right ToDos.
    # Streamed, the ToDos run inside `plan` (nothing needs approval), which asks the
    # planner model again on resume: its second answer is the same plan.
    # The plan's ToDos are t1..t6: a, b, c, slow, d (after c and a), e (after slow).
    a, b, c, slow, d, e = (f"t{n}" for n in range(1, 7))
    work = RecordingExecutor(delays={a: 0.15, b: 0.1, c: 0.01, slow: 5.0, d: 0.01})
    plan = {
        "goal": "g",
        "todos": [
            {"id": a, "title": "A", "executor": "work"},
            {"id": b, "title": "B", "executor": "work"},
            {"id": c, "title": "C", "executor": "work"},
            {"id": slow, "title": "Slow", "executor": "work"},
            {"id": d, "title": "D", "executor": "work", "depends_on": [c, a]},
            {"id": e, "title": "E", "executor": "work", "depends_on": [slow]},
        ],
    }
    planner = ScriptedChatModel.script(structured=[steps(plan)] * 2)
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[work],
        stream_plans=streamed,
    )
    conv = Conversation(svc)

    run = asyncio.create_task(conv.start("Write an email to Tom with the agenda"))
    while ("end", d) not in work.events:  # noqa: ASYNC110 - polling a plain list is enough here
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # let the last pending write land
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert work.runs(e) == 0

    # A fresh graph on the same checkpoints, quick this time, continues the conversation.
    work.delays = {slow: 0.01}
    again = Conversation(svc, checkpointer=conv.checkpointer)
    again.thread_id, again.config = conv.thread_id, conv.config
    state = await again.carry_on()

    assert state["status"] == "done"
    assert [work.runs(t) for t in (a, b, c, slow, d, e)] == [1, 1, 1, 2, 1, 1]
    result = Plan.model_validate(state["plan"])
    for todo in result.todos:
        assert todo.output["did"] == todo.id
    assert result.todo(d).output == {"did": d, "saw": [a, c]}
    ids = [m["id"] for m in state["lam"]]
    assert len(ids) == len(set(ids))


async def test_braces_in_a_request_are_text_not_placeholders() -> None:
    conv = Conversation(services(models=NO_LLM))
    await conv.start("Remind me to fix {t1} and {oops} in the config")
    await conv.approve_plan()
    (waiting,) = await conv.interrupts()
    drafted = waiting.value["content"]["inputs"]["dependencies"]
    assert "fix {t1} and {oops} in the config" in next(iter(drafted.values()))


async def test_an_answered_assign_keeps_its_first_timestamp_and_comes_first() -> None:
    conv = Conversation(services(models=NO_LLM))
    await conv.start("Remind me to call Anna tomorrow at 9")
    await conv.approve_plan()
    (waiting,) = await conv.interrupts()
    first_sent = waiting.value
    state = await conv.resume({waiting.id: _desktop_answer(first_sent, "added")})
    log = state["lam"]
    (assign,) = [m for m in log if m["id"] == first_sent["id"]]
    assert assign == first_sent
    done = next(m for m in log if m["in_reply_to"] == assign["id"])
    assert log.index(assign) < log.index(done)


async def test_run_config_overrides_settings_by_name() -> None:
    work = RecordingExecutor()
    plan = {"goal": "g", "todos": [{"id": "t1", "title": "Send", "executor": "work"}]}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(models={"router": UncallableChatModel(), "planner": planner}, executors=[work])
    assert svc.settings.approval_policy == "flagged"
    conv = Conversation(svc)
    conv.config["configurable"]["approval_policy"] = "always"
    await conv.start("Write an email to Tom with the agenda")
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose" and work.runs("t1") == 0


async def test_llm_intent_outside_the_registry_falls_back_to_the_planner() -> None:
    router = ScriptedChatModel.script(structured=[{"intent": "flights", "confidence": 0.9}])
    plan = {"goal": "g", "todos": [{"id": "t1", "title": "Look", "executor": "work"}]}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(models={"router": router, "planner": planner}, executors=[RecordingExecutor()])
    state = await Conversation(svc).start("xyzzy plugh")
    assert "flights" in state["intent"]["router_error"]
    assert state["status"] == "done" and planner.remaining == 0


async def test_an_unreadable_approval_is_asked_again() -> None:
    work = RecordingExecutor()
    plan = {
        "goal": "g",
        "todos": [{"id": "t1", "title": "Send", "executor": "work", "requires_approval": True}],
    }
    conv = _planned(plan, work)
    await conv.start("Write an email to Tom with the agenda")
    (first,) = await conv.interrupts()
    await conv.resume({first.id: "maybe"})
    (again,) = await conv.interrupts()
    assert again.id != first.id and again.value == first.value  # the same propose, asked anew
    state = await conv.resume({again.id: "agree"})
    assert state["status"] == "done" and work.runs("t1") == 1


async def test_an_unreadable_desktop_answer_is_asked_again() -> None:
    conv = Conversation(services(models=NO_LLM))
    await conv.start("Remind me to call Anna tomorrow at 9")
    await conv.approve_plan()
    (first,) = await conv.interrupts()
    stray = {**_desktop_answer(first.value, "x"), "in_reply_to": "someone-else"}
    await conv.resume({first.id: stray})
    (again,) = await conv.interrupts()
    assert again.id != first.id and again.value == first.value
    state = await conv.resume({again.id: _desktop_answer(again.value, "added")})
    assert state["status"] == "done"
    assert stray["id"] not in {m["id"] for m in state["lam"]}
