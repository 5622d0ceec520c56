"""The conversation layer: views mid-run, answers matched to what waits, refusals."""

from __future__ import annotations

import pytest

from graph.conversations import (
    AnswerMismatchError,
    ConversationNotFoundError,
    Conversations,
    NothingWaitingError,
    NotTheReceiverError,
    WrongTodoError,
)
from graph.storage.errors import RedisUnavailableError
from lam import LAMMessage, MessageFactory
from tests.support.executors import RecordingExecutor
from tests.support.planner_harness import Conversation, services
from tests.support.scripted import ScriptedChatModel, UncallableChatModel, steps
from tests.test_running import REFUSED_ANSWER, stop_after_writes_of

PLAN = {
    "goal": "g",
    "todos": [
        {"id": "t1", "title": "Work", "executor": "work"},
        {"id": "t2", "title": "On the desktop", "executor": "desktop"},
        {"id": "t3", "title": "Also desktop", "executor": "desktop", "depends_on": ["t1"]},
        {"id": "t4", "title": "After both", "executor": "work", "depends_on": ["t2", "t3"]},
    ],
}


async def _agree(convs: Conversations, cid: str, *, owner: str | None = None) -> None:
    """The person agrees to the plan (its desktop steps change something: it asks first)."""
    (propose,) = await convs.inbox(cid, "user", owner=owner)
    agree = MessageFactory("user", cid).agree(LAMMessage.from_dict(propose))
    await convs.run(cid, await convs.answer(cid, agree, owner=owner), owner=owner)


def _conversations() -> tuple[Conversations, RecordingExecutor, Conversation]:
    work = RecordingExecutor()
    planner = ScriptedChatModel.script(structured=[steps(PLAN)])
    svc = services(models={"router": UncallableChatModel(), "planner": planner}, executors=[work])
    conv = Conversation(svc)
    return Conversations(conv.graph, conv.checkpointer), work, conv


async def test_view_while_desktop_todos_wait() -> None:
    convs, work, conv = _conversations()
    cid = conv.thread_id
    streamed = [m async for m in convs.stream(cid, convs.opening("Write an email to Tom"))]
    await _agree(convs, cid)

    view = await convs.view(cid)
    assert view.status == "waiting"
    assert view.plan is not None
    statuses = {t["id"]: t["status"] for t in view.plan["todos"]}
    # t1 finished inside the step that is still under way; t2 and t3 wait on the desktop.
    assert statuses == {"t1": "done", "t2": "running", "t3": "running", "t4": "pending"}
    ids = [m["id"] for m in view.messages]
    assert len(ids) == len(set(ids))
    assert {m["id"] for m in streamed} <= set(ids)
    inbox = await convs.inbox(cid, "cpa-desktop")
    assert sorted(m["content"]["todo"]["id"] for m in inbox) == ["t2", "t3"]
    assert await convs.inbox(cid, "user") == []
    body = view.to_dict()
    assert set(body) == {"conversation_id", "status", "intent", "plan", "result", "messages"}
    assert body["intent"] == "email"

    # Answer both; the conversation completes and nothing that finished ran again.
    for message in inbox:
        assign = LAMMessage.from_dict(message)
        done = MessageFactory("cpa-desktop", cid).done(assign, f"did {assign.todo().id}")
        await convs.run(cid, await convs.answer(cid, done))
    view = await convs.view(cid)
    assert view.status == "done"
    assert work.runs("t1") == 1 and work.runs("t4") == 1
    assert view.plan is not None
    assert all(t["status"] == "done" for t in view.plan["todos"])


async def test_answers_to_nothing_or_of_the_wrong_kind_are_refused() -> None:
    convs, _work, conv = _conversations()
    cid = conv.thread_id
    await convs.run(cid, convs.opening("Write an email to Tom"))
    await _agree(convs, cid)
    (first, *_rest) = await convs.inbox(cid)
    assign = LAMMessage.from_dict(first)
    user = MessageFactory("user", cid)

    with pytest.raises(AnswerMismatchError, match="assign is answered with done or failure"):
        await convs.answer(cid, user.reply(assign, "agree"))
    stray = (
        MessageFactory("cpa-desktop", cid)
        .done(assign, "x")
        .model_copy(update={"in_reply_to": "no-such-message"})
    )
    with pytest.raises(NothingWaitingError):
        await convs.answer(cid, stray)
    # Refused answers changed nothing.
    assert (await convs.view(cid)).status == "waiting"
    assert len(await convs.inbox(cid)) == 2


async def test_unknown_conversation() -> None:
    convs, _work, _conv = _conversations()
    with pytest.raises(ConversationNotFoundError):
        await convs.view("nope")


async def test_owners_have_their_own_conversations_under_the_same_id() -> None:
    # Issue 10, finding 8: the server's tenants (owners), and the CLI (no owner).
    convs, _work, _conv = _conversations()
    cid = "shared-id"
    await convs.run(cid, convs.opening("Write an email to Tom"), owner="acme")
    with pytest.raises(ConversationNotFoundError):
        await convs.view(cid, owner="globex")
    with pytest.raises(ConversationNotFoundError):
        await convs.view(cid)  # the CLI's conversation of that id is another one
    await convs.run(cid, convs.opening("Write an email to Anna"), owner="globex")

    mine, theirs = await convs.view(cid, owner="acme"), await convs.view(cid, owner="globex")
    assert mine.messages[0]["content"]["text"] == "Write an email to Tom"
    assert theirs.messages[0]["content"]["text"] == "Write an email to Anna"
    # The LAM messages carry the public id, never the thread's `owner/id`.
    assert {m["conversation_id"] for m in mine.messages + theirs.messages} == {cid}
    assert Conversations.config(cid, "acme")["configurable"]["thread_id"] == "acme/shared-id"


async def test_answers_come_from_the_receiver_and_name_the_assigned_todo() -> None:
    convs, _work, conv = _conversations()
    cid = conv.thread_id
    await convs.run(cid, convs.opening("Write an email to Tom"))
    (propose,) = await convs.inbox(cid, "user")
    forged = MessageFactory("cpa-desktop", cid).agree(LAMMessage.from_dict(propose))
    with pytest.raises(NotTheReceiverError, match="sent to user"):
        await convs.answer(cid, forged)
    await _agree(convs, cid)
    by_todo = {m["content"]["todo"]["id"]: m for m in await convs.inbox(cid, "cpa-desktop")}
    assign = LAMMessage.from_dict(by_todo["t2"])
    with pytest.raises(WrongTodoError, match="assigned ToDo t2; the answer names t3"):
        await convs.answer(cid, MessageFactory("cpa-desktop", cid).done(assign, 1, todo_id="t3"))
    with pytest.raises(NotTheReceiverError):
        await convs.answer(cid, MessageFactory("user", cid).done(assign, 1))
    assert (await convs.view(cid)).status == "waiting"


async def test_abandon_ends_a_waiting_conversation_as_failed() -> None:
    convs, work, conv = _conversations()
    cid = conv.thread_id
    await convs.run(cid, convs.opening("Write an email to Tom"))

    view = await convs.abandon(cid, "expired", "no answer within 1 s")

    assert view.status == "failed"
    assert view.result == {"error": {"code": "expired", "message": "no answer within 1 s"}}
    failure = view.messages[-1]
    assert failure["performative"] == "failure" and failure["receiver"] == "user"
    assert failure["content"]["error"]["code"] == "expired"
    assert await convs.inbox(cid) == [] and view.waiting == []
    with pytest.raises(NothingWaitingError):
        await convs.abandon(cid, "expired", "again")
    # t1 only reads: it ran while the plan was written (streamed plans); nothing that
    # waited for the abandoned approval ran.
    assert (work.runs("t1"), work.runs("t4")) == (1, 0)


async def test_a_turn_stopped_after_its_last_writes_before_their_checkpoint_is_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`respond`'s writes stored, the checkpoint after them not: the state shows the answer
    and `done`, yet the turn is `running` until carried on (`tests.test_running`)."""
    convs, _, conv = _conversations()
    cid = conv.thread_id
    await convs.run(cid, convs.opening("Write an email to Tom"))
    stopped = stop_after_writes_of(conv.checkpointer, "respond", monkeypatch)
    (propose,) = await convs.inbox(cid, "user")
    refuse = MessageFactory("user", cid).refuse(LAMMessage.from_dict(propose), "no")
    with pytest.raises(RedisUnavailableError):
        await convs.run(cid, await convs.answer(cid, refuse))
    assert stopped

    view = await convs.view(cid)
    assert view.status == "running"
    assert view.messages[-1]["content"]["text"] == REFUSED_ANSWER  # applied, not checkpointed
    view = await convs.run(cid, None)  # carried on: the checkpoint after `respond`
    assert view.status == "done"
    answers = [m for m in view.messages if m["content"].get("topic") == "answer"]
    assert [m["content"]["text"] for m in answers] == [REFUSED_ANSWER]
