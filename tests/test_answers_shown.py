"""What an answer shows: a model's text only when it is whole and fit to show, results as
text or JSON, and the words around them in the request's language.

Scripted models (tests/support/scripted.py) write the texts: one cut off at the token limit, one
that says a sentence over and over, one that reports on ToDos the plan never had. The
summary is asked for once more, saying what was wrong, then replaced by the listed results;
a direct answer that cannot be shown ends the turn with that failure; an `llm` ToDo whose
text cannot be used is tried again and then fails, so its plan does not end as done.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from graph.text_check import repetition, unknown_todos, unusable
from nodes.respond import SUMMARY_ATTEMPTS
from tests.support.executors import RecordingExecutor
from tests.support.planner_harness import Conversation, services
from tests.support.scripted import ScriptedChatModel, UncallableChatModel, cut_off, steps

REQUEST = "Write an email to Tom with the agenda"  # rule-matched, planned by the LLM
QUESTION = "What is the capital of Portugal?"  # the rules: `question`, answered directly
TWO_STEPS = steps(
    {
        "goal": "Mail Tom",
        "todos": [
            {"id": "t1", "title": "Draft the agenda", "executor": "work"},
            {"id": "t2", "title": "Send it to Tom", "executor": "work", "depends_on": ["t1"]},
        ],
    }
)
LOOP = "I have sent the agenda to Tom. " * 20
MADE_UP = "Done: t1 drafted the agenda, t2 sent it, t6 booked a room and t28 ordered lunch."
GOOD = "I drafted the agenda and sent it to Tom."


def _answer(state: dict[str, Any]) -> dict[str, Any]:
    answer = state["lam"][-1]
    assert answer["performative"] == "inform" and answer["content"]["topic"] == "answer"
    return dict(answer["content"])


def _planned(
    *texts: str | AIMessage, executor: Any = None, **settings: Any
) -> tuple[Conversation, ScriptedChatModel]:
    writer = ScriptedChatModel.script(texts=texts)
    svc = services(
        models={
            "router": UncallableChatModel(),
            "planner": ScriptedChatModel.script(structured=[TWO_STEPS]),
            "executor": writer,
        },
        executors=[executor or RecordingExecutor()],
        **settings,
    )
    return Conversation(svc), writer


# -- the rules ---------------------------------------------------------------------------


def test_a_looping_text_is_told_apart_from_a_list_of_similar_steps() -> None:
    assert repetition(LOOP) is not None
    assert repetition("sent the agenda to Tom and " * 6) is not None  # no full stops at all
    steps_done = "\n".join(f"- Send the invitation to guest {n}: done" for n in range(1, 9))
    assert repetition(steps_done) is None
    assert repetition(GOOD) is None


def test_made_up_todo_ids_are_named() -> None:
    assert unknown_todos(MADE_UP, ["t1", "t2"]) == ["t6", "t28"]
    assert unknown_todos("T1 and t2 are done; at 10 t.m.", ["t1", "t2"]) == []
    assert unusable(MADE_UP, todo_ids=["t1", "t2"]) == (
        "it names ToDos the plan does not have (t6, t28)"
    )
    assert unusable("   ") == "it is empty"
    assert unusable(GOOD, todo_ids=["t1", "t2"]) is None


# -- the summary -------------------------------------------------------------------------


async def test_a_summary_cut_off_is_asked_for_again_and_the_whole_one_shown() -> None:
    conv, writer = _planned(cut_off("I drafted the agenda and then I"), GOOD)
    state = await conv.start(REQUEST)
    assert _answer(state)["text"] == GOOD and state["status"] == "done"
    (_, second) = [messages for kind, _, messages in writer.calls if kind == "text"]
    again = second[-1]
    assert isinstance(again, HumanMessage) and "cut off at the token limit" in again.text
    assert isinstance(second[-2], AIMessage)  # what it wrote, so it sees what went wrong
    assert "…" not in _answer(state)["text"]


@pytest.mark.parametrize("bad", [LOOP, MADE_UP], ids=["looping", "made-up-todos"])
async def test_a_summary_unfit_twice_gives_way_to_the_listed_results(bad: str) -> None:
    conv, writer = _planned(*[bad] * SUMMARY_ATTEMPTS)
    state = await conv.start(REQUEST)
    text = _answer(state)["text"]
    assert text.startswith("Mail Tom:\n- Draft the agenda: done")
    assert bad.strip() not in text
    assert len([c for c in writer.calls if c[0] == "text"]) == SUMMARY_ATTEMPTS
    assert state["status"] == "done"  # the steps did their work; only the summary was unfit


async def test_a_direct_answer_cut_off_twice_is_no_answer() -> None:
    writer = ScriptedChatModel.script(texts=[cut_off("The capital of Portugal is")] * 2)
    svc = services(models={"router": UncallableChatModel(), "executor": writer})
    state = await Conversation(svc).start(QUESTION)
    assert len([c for c in writer.calls if c[0] == "text"]) == 2  # asked again, briefly
    assert state["status"] == "failed"
    assert state["result"]["error"]["code"] == "llm_truncated"
    assert "token limit" in _answer(state)["text"]
    assert "The capital of Portugal is" not in _answer(state)["text"]


async def test_a_direct_answer_cut_off_once_is_asked_again_briefly() -> None:
    writer = ScriptedChatModel.script(
        texts=[cut_off("The capital of Portugal is Lisbon, Lisbon, Lisbon"), "Lisbon."]
    )
    svc = services(models={"router": UncallableChatModel(), "executor": writer})
    state = await Conversation(svc).start(QUESTION)
    assert state["status"] == "done"
    assert _answer(state)["text"] == "Lisbon."


# -- the `llm` executor ------------------------------------------------------------------


async def test_an_llm_step_that_only_loops_is_tried_again_then_fails_the_plan() -> None:
    plan = steps(
        {"goal": "Mail Tom", "todos": [{"id": "t1", "title": "Draft it", "executor": "llm"}]}
    )
    writer = ScriptedChatModel.script(texts=[LOOP, LOOP, "unused"])
    svc = services(
        models={
            "router": UncallableChatModel(),
            "planner": ScriptedChatModel.script(structured=[plan]),
            "executor": writer,
        },
        todo_retries=1,
        max_replans=0,
    )
    state = await Conversation(svc).start(REQUEST)
    (todo,) = state["plan"].todos
    assert todo.status == "failed" and todo.error.startswith("llm_bad_output")
    assert state["status"] == "failed"
    second_try = [m for kind, _, m in writer.calls if kind == "text"][1]
    assert "at most" in second_try[-1].text  # asked to be brief this time


# -- results and words ---------------------------------------------------------------------


async def test_outputs_are_shown_as_json_not_python() -> None:
    svc = services(
        models={
            "router": UncallableChatModel(),
            "planner": ScriptedChatModel.script(structured=[TWO_STEPS]),
        },
        executors=[RecordingExecutor()],
    )
    text = _answer(await Conversation(svc).start(REQUEST))["text"]
    assert '- Draft the agenda: done: {"did": "t1", "saw": []}' in text
    assert "{'did'" not in text


async def test_a_german_request_gets_german_words_around_its_results() -> None:
    svc = services(
        models={
            "router": UncallableChatModel(),
            "planner": ScriptedChatModel.script(structured=[TWO_STEPS]),
        },
        executors=[RecordingExecutor(fail={"t1"})],
        max_replans=0,
    )
    state = await Conversation(svc).start("Schreib eine Mail an Tom mit der Tagesordnung")
    text = _answer(state)["text"]
    assert "- Draft the agenda: fehlgeschlagen (broken: t1 is broken)" in text
    assert "- Send it to Tom: übersprungen (weil t1 fehlgeschlagen ist)" in text
    assert "depends on" not in text and "which failed" not in text
