"""LAM ↔ A2A: a conversation's turn as an A2A task, and an A2A reply as a LAM answer.

A conversation is an A2A *context* (context id = conversation id); each turn of it (one
`request` and what followed) is an A2A *task*. The task id is `<conversation id>/<suffix>`:
LAM ids cannot hold `/`, so the conversation is read back from the task id alone, and the
turn is the `request` whose metadata carries that task id (`TASK_ID_KEY`). Nothing about a
task is stored apart from the conversation: its state is the conversation's, read when asked.

The table of the whole mapping, both directions, is in docs/a2a.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part, new_text_part
from a2a.types import Artifact, Message, Part, Role, Task, TaskState, TaskStatus
from google.protobuf.json_format import MessageToDict

from graph.intents.language import detect_language
from graph.state import LamDict
from lam import LAMMessage, MessageFactory, Performative
from lam.log import LamLog, Turn
from lam.text import ID_PATTERN
from prompts.phrasebook import phrase

#: The LAM agent id of whoever speaks A2A to the planner: the person behind the client.
A2A_USER = "user"
#: Metadata key of a `request` that opened a turn for an A2A task: the task's id.
TASK_ID_KEY = "a2a_task_id"
_LAM_ID = re.compile(ID_PATTERN)
# Namespace of LAM ids derived from A2A message ids that are not LAM ids.
_A2A_MESSAGES = uuid.UUID("0b3c1f0e-6a55-4f57-a1c2-7d2f8b9e4a61")

_YES = {"yes", "y", "ok", "okay", "approve", "approved", "agree", "go", "ja", "j", "einverstanden"}
_NO = {"no", "n", "refuse", "reject", "deny", "stop", "cancel", "nein", "ablehnen"}


class ReplyNotUnderstoodError(ValueError):
    """An A2A reply that neither approves nor refuses the waiting plan."""


# Ids ----------------------------------------------------------------------------------


def new_task_id(conversation_id: str) -> str:
    """A fresh task id inside a conversation."""
    return f"{conversation_id}/{uuid.uuid4().hex}"


def conversation_of(task_id: str) -> str | None:
    """The conversation id a task id names, or None if it names none of ours."""
    cid, slash, rest = task_id.partition("/")
    if not slash or not rest or not _LAM_ID.fullmatch(cid):
        return None
    return cid


def lam_id(a2a_message_id: str) -> str:
    """The LAM id of an A2A message: its own id if it is a valid LAM id, else one derived."""
    if a2a_message_id and _LAM_ID.fullmatch(a2a_message_id):
        return a2a_message_id
    return str(uuid.uuid5(_A2A_MESSAGES, a2a_message_id or uuid.uuid4().hex))


# A2A → LAM ----------------------------------------------------------------------------


def text_of(message: Message) -> str:
    return "\n".join(t for t in get_text_parts(list(message.parts)) if t).strip()


def data_of(message: Message) -> list[Any]:
    return [d for d in get_data_parts(list(message.parts)) if d is not None]


def request_from(
    message: Message, conversation_id: str, task_id: str, sender: str = A2A_USER
) -> LAMMessage:
    """The LAM `request` that opens the turn an A2A message starts, sent by `sender` (the
    caller's principal, `user` for a tenant-wide credential)."""
    text = text_of(message)
    if not text:
        raise ReplyNotUnderstoodError("the message has no text part: say what you want done")
    return MessageFactory(sender, conversation_id).request(
        text,
        message_id=lam_id(message.message_id),
        metadata={TASK_ID_KEY: task_id},
    )


def decision_of(message: Message) -> tuple[bool, str]:
    """(approved?, comment or reason) from a reply to a plan waiting for approval.

    A data part `{"approve": true|false, "reason"?: str}` decides; otherwise the first word
    of the text (`yes`/`ok`/`approve`/`ja` or `no`/`refuse`/`nein`), the rest being the
    comment or the reason. Anything else is not understood (nothing is answered).
    """
    for data in data_of(message):
        if isinstance(data, Mapping) and isinstance(data.get("approve"), bool):
            return bool(data["approve"]), str(data.get("reason") or data.get("comment") or "")
    text = text_of(message)
    word, _, rest = text.partition(" ")
    word = word.strip(" .,!:;").lower()
    if word in _YES:
        return True, rest.strip()
    if word in _NO:
        return False, rest.strip()
    raise ReplyNotUnderstoodError(
        "reply 'yes' to approve the plan or 'no' (and a reason) to refuse it, or send a data "
        'part {"approve": true|false}'
    )


def answer_to(waiting: LamDict, message: Message, sender: str = A2A_USER) -> LAMMessage:
    """The LAM answer an A2A reply gives to what waits for the A2A user.

    A `propose` gets `agree` or `refuse` (`decision_of`); an `assign` (a question for the
    person, the `human` executor) gets `done` with the reply as output: its data part if it
    has one, else its text.
    """
    asked = LAMMessage.from_dict(waiting)
    user = MessageFactory(sender, asked.conversation_id)
    answer_id = lam_id(message.message_id)
    if asked.performative == Performative.PROPOSE:
        approved, words = decision_of(message)
        if approved:
            return user.agree(asked, comment=words or None, message_id=answer_id)
        return user.refuse(asked, words or "refused by the user", message_id=answer_id)
    data = data_of(message)
    output: Any = data[0] if data else text_of(message)
    todo_id = asked.content.get("todo", {}).get("id")
    return user.done(asked, output, todo_id=todo_id, message_id=answer_id)


# LAM → A2A ----------------------------------------------------------------------------


def turn_language(turn: Turn) -> str:
    """The language of a turn's request (its `locale`, else as the planner detects it): the
    language of the words around what the planner says."""
    content = turn.request.content
    locale = str(content.get("locale") or "").lower()
    if locale[:2] in ("en", "de"):
        return locale[:2]
    return detect_language(turn.text)


def summary(message: LAMMessage, language: str = "en") -> str:
    """One readable line (or a few) for a LAM message, the text part of its A2A message, with
    the words around it in `language`."""
    content = message.content
    match message.performative:
        case Performative.REQUEST:
            return str(content.get("text", ""))
        case Performative.INFORM:
            return str(content.get("text") or content.get("intent") or content.get("topic", ""))
        case Performative.PROPOSE:
            plan = message.plan()
            approval = f" — {phrase(language, 'needs_approval')}"
            steps = [
                f"{i}. {t.title} ({t.executor})" + (approval if t.requires_approval else "")
                for i, t in enumerate(plan.todos, 1)
            ]
            heading = phrase(language, "plan", goal=plan.goal)
            return "\n".join([heading, *steps, phrase(language, "approve_it")])
        case Performative.ASSIGN:
            return f"{message.todo().title} → {message.receiver}"
        case Performative.DONE:
            return phrase(language, "step_done", todo=content.get("todo_id", ""))
        case Performative.FAILURE:
            error = content.get("error") or {}
            return phrase(
                language, "step_failed", code=error.get("code"), message=error.get("message")
            )
        case Performative.AGREE:
            said = f": {content['comment']}" if content.get("comment") else ""
            return phrase(language, "approved") + said
        case Performative.REFUSE:
            return phrase(language, "refused_because", reason=content.get("reason", ""))
    return message.performative.value


def a2a_message(message: LAMMessage, task_id: str, language: str = "en") -> Message:
    """A LAM message as an A2A message: its summary as text, the message itself as data."""
    sender = message.sender
    role = Role.ROLE_USER if sender == A2A_USER or sender.startswith("user:") else Role.ROLE_AGENT
    return Message(
        message_id=message.id,
        context_id=message.conversation_id or "",
        task_id=task_id,
        role=role,
        parts=[
            new_text_part(summary(message, language)),
            new_data_part({"lam": message.to_dict()}),
        ],
    )


def requester(messages: Sequence[LamDict], task_id: str) -> str:
    """Who opened the task's turn (what waits for "the user" waits for them)."""
    this_turn = LamLog(messages).turn_of(TASK_ID_KEY, task_id)
    return this_turn.request.sender if this_turn is not None else A2A_USER


def task_from(
    view: Mapping[str, Any], waiting_for_user: Sequence[LamDict], task_id: str
) -> Task | None:
    """The A2A task of one turn of a conversation (`Views.view`), or None if it has no such turn.

    The latest turn takes the conversation's status: `running` → working; `waiting` →
    input-required if something waits for the A2A user (the plan: the status message
    carries it as a data part), else working (another agent is at work); `done` →
    completed, the answer as an artifact; `failed` → failed (canceled if the failure's code
    says so). An earlier turn is completed or failed, as its answer says.
    """
    log = LamLog(view.get("messages") or [])
    this_turn = log.turn_of(TASK_ID_KEY, task_id)
    if this_turn is None:
        return None
    cid = str(view["conversation_id"])
    language = turn_language(this_turn)
    latest = this_turn is log.current
    answer = this_turn.answer
    status = str(view.get("status")) if latest else None
    if status is None:
        status = "done" if answer and answer.content.get("status") == "done" else "failed"
    state = TaskState.TASK_STATE_WORKING
    status_message: Message | None = None
    if status == "waiting" and waiting_for_user:
        state = TaskState.TASK_STATE_INPUT_REQUIRED
        status_message = question(waiting_for_user[0], task_id, language)
    elif status == "done":
        state = TaskState.TASK_STATE_COMPLETED
    elif status == "failed":
        codes = {error.code for error in this_turn.errors}
        state = TaskState.TASK_STATE_CANCELED if CANCELED in codes else TaskState.TASK_STATE_FAILED
    if status_message is None and answer is not None and state != TaskState.TASK_STATE_WORKING:
        status_message = a2a_message(answer, task_id, language)
    task = Task(
        id=task_id,
        context_id=cid,
        status=TaskStatus(state=state, message=status_message),
        history=[a2a_message(m, task_id, language) for m in this_turn.messages],
    )
    if state == TaskState.TASK_STATE_COMPLETED:
        task.artifacts.append(
            answer_artifact(answer, view.get("result") if latest else None, task_id)
        )
    return task


#: The failure code of a conversation ended by `tasks/cancel`.
CANCELED = "canceled"


def question(waiting: LamDict, task_id: str, language: str = "en") -> Message:
    """The status message of an input-required task: what waits, with the plan as data."""
    asked = LAMMessage.from_dict(waiting)
    data: dict[str, Any] = {"lam": asked.to_dict()}
    if asked.performative is Performative.PROPOSE:
        data = {"plan": asked.content["plan"], "propose_id": asked.id, **data}
    return Message(
        message_id=f"{asked.id}.question",
        context_id=asked.conversation_id or "",
        task_id=task_id,
        role=Role.ROLE_AGENT,
        parts=[new_text_part(summary(asked, language)), new_data_part(data)],
    )


def answer_artifact(answer: LAMMessage | None, result: Any, task_id: str) -> Artifact:
    """The turn's answer: its text, and the conversation's result as data."""
    parts: list[Part] = []
    if answer is not None:
        parts.append(new_text_part(summary(answer)))
    if result is not None:
        parts.append(new_data_part({"result": result}))
    return Artifact(artifact_id=f"{task_id}.answer", name="answer", parts=parts)


def task_dict(task: Task) -> dict[str, Any]:
    """A task as JSON (for logs and tests)."""
    return dict(MessageToDict(task))
