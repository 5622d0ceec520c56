"""LAM ↔ A2A without a server: ids, replies, task states, remote outcomes, settings."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part
from a2a.types import Message, Part, Role, TaskState

from api.a2a import mapping
from graph.config import ConfigError, Settings
from lam import MessageFactory, Performative, Plan, ToDo
from nodes.executors.a2a import A2AExecutor, a2a_executors, answer_for

CID = "conv-1"
TASK = f"{CID}/abc"


def reply(text: str = "", data: Any = None) -> Message:
    parts = [Part(text=text)] if text else []
    if data is not None:
        parts.append(new_data_part(data))
    return Message(role=Role.ROLE_USER, message_id="m-1", parts=parts)


def conversation(status: str, text: str = "book it") -> tuple[dict[str, Any], dict[str, Any]]:
    user = MessageFactory("user", CID)
    planner = MessageFactory("planner", CID)
    request = user.request(text, metadata={mapping.TASK_ID_KEY: TASK})
    plan = Plan(goal="g", todos=[ToDo(id="t1", title="Book", executor="desktop")])
    propose = planner.propose("user", plan)
    messages = [request.to_dict(), propose.to_dict()]
    if status in ("done", "failed"):
        messages.append(planner.inform("user", "answer", text="all done", status=status).to_dict())
    view = {"conversation_id": CID, "status": status, "messages": messages, "result": {"x": 1}}
    return view, propose.to_dict()


def test_task_ids_name_their_conversation() -> None:
    task_id = mapping.new_task_id(CID)
    assert mapping.conversation_of(task_id) == CID
    assert mapping.conversation_of("no-slash") is None
    assert mapping.conversation_of("bad id/x") is None
    assert mapping.lam_id("ok-id.1") == "ok-id.1"
    assert mapping.lam_id("not a lam id!") == mapping.lam_id("not a lam id!") != "not a lam id!"


@pytest.mark.parametrize(
    ("message", "approved", "words"),
    [
        (reply("yes"), True, ""),
        (reply("Ja, passt"), True, "passt"),
        (reply("no, too expensive"), False, "too expensive"),
        (reply(data={"approve": False, "reason": "not now"}), False, "not now"),
        (reply("whatever", data={"approve": True}), True, ""),
    ],
)
def test_replies_that_decide(message: Message, approved: bool, words: str) -> None:
    assert mapping.decision_of(message) == (approved, words)


def test_a_reply_that_decides_nothing_is_refused() -> None:
    with pytest.raises(mapping.ReplyNotUnderstoodError, match="reply 'yes'"):
        mapping.decision_of(reply("maybe later"))
    with pytest.raises(mapping.ReplyNotUnderstoodError):
        mapping.request_from(reply(data={"x": 1}), CID, TASK)


def test_answer_to_a_proposal() -> None:
    _, propose = conversation("waiting")
    agree = mapping.answer_to(propose, reply("ok"))
    assert agree.performative == Performative.AGREE
    assert (agree.in_reply_to, agree.sender, agree.receiver) == (propose["id"], "user", "planner")
    refuse = mapping.answer_to(propose, reply("no because"))
    assert refuse.performative == Performative.REFUSE
    assert refuse.content == {"reason": "because"}


def test_task_states_follow_the_conversation() -> None:
    view, propose = conversation("waiting")
    task = mapping.task_from(view, [propose], TASK)
    assert task is not None and task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    [data] = get_data_parts(list(task.status.message.parts))
    assert data["propose_id"] == propose["id"]
    assert data["plan"]["todos"][0]["id"] == "t1"
    # Waiting for someone else (the desktop): the task works on.
    working = mapping.task_from(view, [], TASK)
    assert working is not None and working.status.state == TaskState.TASK_STATE_WORKING

    done_view, _ = conversation("done")
    done = mapping.task_from(done_view, [], TASK)
    assert done is not None and done.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_data_parts(list(done.artifacts[0].parts)) == [{"result": {"x": 1.0}}]

    assert mapping.task_from(done_view, [], f"{CID}/other") is None


def test_what_an_a2a_client_reads_is_in_the_request_language() -> None:
    english, propose = conversation("waiting")
    task = mapping.task_from(english, [propose], TASK)
    assert task is not None
    (text,) = get_text_parts(list(task.status.message.parts))
    assert text == "Plan: g\n1. Book (desktop)\nApprove it? Reply 'yes' or 'no'."

    german, propose = conversation("waiting", text="Buch mir bitte den Tisch für morgen")
    task = mapping.task_from(german, [propose], TASK)
    assert task is not None
    (text,) = get_text_parts(list(task.status.message.parts))
    assert text == "Plan: g\n1. Book (desktop)\nZustimmen? Antworte mit 'ja' oder 'nein'."
    # A step's news and a refusal too.
    planner = MessageFactory("planner", CID)
    assign = planner.assign("cpa-desktop", ToDo(id="t1", title="Book", executor="desktop"), {})
    done = MessageFactory("cpa-desktop", CID).done(assign, None)
    assert mapping.summary(done, "de") == "t1 erledigt"
    refused = MessageFactory("user", CID).refuse(
        planner.propose("user", Plan(goal="g", todos=[])), "keine Zeit"
    )
    assert mapping.summary(refused, "de") == "abgelehnt: keine Zeit"


def test_remote_outcomes() -> None:
    todo = ToDo(id="t1", title="Ask", executor="a2a:helper")
    assign = MessageFactory("planner", CID).assign("a2a:helper", todo, {})
    assert answer_for(assign, {"id": "r", "status": {"state": "TASK_STATE_WORKING"}}) is None
    done = answer_for(
        assign,
        {
            "id": "r",
            "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"name": "a", "parts": [{"text": "hi"}, {"data": {"k": "v"}}]}],
        },
    )
    assert done is not None and done.performative == Performative.DONE
    assert done.sender == "a2a:helper" and done.in_reply_to == assign.id
    assert done.content["output"] == [{"name": "a", "text": "hi", "data": [{"k": "v"}]}]
    failed = answer_for(
        assign,
        {
            "id": "r",
            "status": {
                "state": "TASK_STATE_FAILED",
                "message": {"role": "ROLE_AGENT", "messageId": "x", "parts": [{"text": "boom"}]},
            },
        },
    )
    assert failed is not None and failed.performative == Performative.FAILURE
    assert failed.content["error"] == {"code": "a2a_failed", "message": "a2a:helper: boom"}
    assert failed.id == done.id  # one answer per remote outcome


def test_agents_from_settings() -> None:
    settings = Settings.from_env(
        {
            "CPA_A2A_AGENTS": "helper=http://127.0.0.1:9/, search=https://s.example",
            "CPA_A2A_READ_ONLY": "search",
        }
    )
    executors = {e.name: e for e in a2a_executors(settings)}
    assert set(executors) == {"a2a:helper", "a2a:search"}
    todo = ToDo(id="t1", title="x", executor="a2a:helper")
    assert executors["a2a:helper"].effect_for(todo) == "change"
    assert executors["a2a:search"].effect_for(todo) == "read"
    assert isinstance(executors["a2a:helper"], A2AExecutor)
    assert executors["a2a:helper"].receiver == "a2a:helper"


def test_bad_agent_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="CPA_A2A_AGENTS"):
        Settings.from_env({"CPA_A2A_AGENTS": "no url here"})
    settings = Settings.from_env(
        {"CPA_A2A_AGENTS": "helper=http://h", "CPA_A2A_ALLOWLIST": "http://h"}
    )
    for widening in (
        {"a2a_agents": {"helper": "http://h", "evil": "http://e"}},
        {"a2a_allowlist": ("http://h", "http://e")},
        {"a2a_read_only": ("helper",)},
    ):
        with pytest.raises(ConfigError, match="run config cannot"):
            settings.with_overrides(widening)
    assert settings.with_overrides({"a2a_allowlist": ()}).a2a_allowlist == ()
