"""One reading of a conversation's LAM log: what its messages say, typed.

The log is the conversation (docs/protocol.md). Everything that shows or measures one reads
it here, the same way: the metrics and traces, the terminal's view, the console's overview,
the A2A tasks. :class:`LamLog` takes messages in log order, one at a time (a live view) or
all at once, and keeps:

- the **turns**: a ``request`` and what followed it, until the next ``request``;
- per turn: the intent and the tier that decided it (the ``inform`` of topic ``intent``),
  the route, the plans (the first proposal, the repaired ones and the **re-plans**, proposed
  after ToDos of the turn had run), the person's answer to a proposal, each **ToDo's
  state** (pending → running on its ``assign`` → done or failed on the reply; skipped when
  the plan is refused), the answer (``inform`` of topic ``answer``) and the **outcome**.

:meth:`LamLog.add` also says what each message *meant* (an :class:`Entry` with its
:class:`Meaning`): a reader that reacts to what a step added (telemetry counting a re-plan,
the terminal printing "t1 done") asks that, never the message's ``performative`` string.

Messages are :class:`lam.LAMMessage`. A dict is taken as the log holds it, written by
``LAMMessage.to_dict`` after its message was validated: it is read, not validated again
(validating every message of a log on every reading costs more than the step that wrote
it). The typed content a reading needs (an intent, a route, a plan, a ToDo, an error) is
validated where it is read; a dict that cannot be read (a key missing, no performative, a
bad timestamp, content out of shape) is left out, and ``unreadable`` counts them: a reader
of a log never fails on it. A message seen before (same id) is taken once, so a log may
be fed again as it grows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ValidationError

from lam.content import ErrorInfo, IntentInformContent, RouteContent
from lam.messages import LAMMessage
from lam.performative import Performative
from lam.plan import Plan, ToDo, TodoStatus
from lam.rfc3339 import parse_rfc3339

__all__ = [
    "Entry",
    "LamLog",
    "Meaning",
    "MessageLike",
    "TodoState",
    "Turn",
    "TurnOutcome",
    "performative_of",
]

MessageLike = LAMMessage | Mapping[str, Any]
"""A LAM message, or its JSON dict (``LAMMessage.to_dict``)."""

TurnOutcome = Literal["done", "failed", "refused"]


class Meaning(StrEnum):
    """What a message means in its conversation."""

    REQUEST = "request"  # opens a turn
    INTENT = "intent"  # the intent found, and who decided it
    ROUTE = "route"  # where the front door sent the request
    PLAN = "plan"  # a proposal before any ToDo of the turn ran (the first, or a repair)
    REPLAN = "replan"  # a proposal after ToDos of the turn ran
    PLAN_SENT_BACK = "plan_sent_back"  # the planner refused its own plan: back with problems
    ANSWER_SENT_BACK = "answer_sent_back"  # the planner refused its model's answer (no plan)
    APPROVED = "approved"  # `agree` to a proposal
    REFUSED = "refused"  # `refuse` of a proposal: none of its ToDos runs
    ASSIGNED = "assigned"  # a ToDo sent to its executor
    TODO_DONE = "todo_done"
    TODO_FAILED = "todo_failed"
    TURN_FAILED = "turn_failed"  # a `failure` of the turn itself (no ToDo named)
    ANSWER = "answer"  # the turn's answer: it is over
    OTHER = "other"


@dataclass
class TodoState:
    """One ToDo of the turn's latest plan, as the log tells it."""

    todo: ToDo  # as the latest plan has it
    status: TodoStatus = "pending"
    assigned_at: datetime | None = None
    ended_at: datetime | None = None
    output: Any = None
    error: str | None = None  # why it failed (its `failure`'s message) or was skipped
    failure: ErrorInfo | None = None  # the `failure` that ended it
    assign: LAMMessage | None = None  # the latest `assign` of it

    @property
    def executor(self) -> str:
        return self.todo.executor


@dataclass
class Turn:
    """A `request` and what followed it."""

    request: LAMMessage
    messages: list[LAMMessage] = field(default_factory=list)
    intent: IntentInformContent | None = None
    route: RouteContent | None = None
    plans: list[Plan] = field(default_factory=list)
    proposal: LAMMessage | None = None  # the latest `propose`
    replans: int = 0
    approval: LAMMessage | None = None  # the `agree` or `refuse` of a proposal
    todos: dict[str, TodoState] = field(default_factory=dict)
    errors: list[ErrorInfo] = field(default_factory=list)  # of every `failure`, in order
    failure: ErrorInfo | None = None  # the turn's own failure (no ToDo named)
    answer: LAMMessage | None = None  # the `inform` of topic `answer`
    _by_id: dict[str, LAMMessage] = field(default_factory=dict, repr=False)
    _ran: bool = False  # a ToDo of the turn was assigned (or refused before it was)

    @property
    def text(self) -> str:
        """The request's text."""
        return str(self.request.content.get("text", ""))

    @property
    def plan(self) -> Plan | None:
        """The latest plan proposed in this turn."""
        return self.plans[-1] if self.plans else None

    @property
    def refused(self) -> str | None:
        """The reason the person refused the plan, if they did."""
        if self.approval is None or self.approval.performative is not Performative.REFUSE:
            return None
        return str(self.approval.content.get("reason", ""))

    @property
    def answer_text(self) -> str | None:
        return None if self.answer is None else str(self.answer.content.get("text", ""))

    @property
    def outcome(self) -> TurnOutcome | None:
        """How the turn ended: None while it has no answer; `refused` when the person refused
        its plan (nothing of it ran), else the status its answer states."""
        if self.answer is None:
            return None
        if self.refused is not None:
            return "refused"
        return "failed" if self.answer.content.get("status") == "failed" else "done"

    def message(self, message_id: str | None) -> LAMMessage | None:
        """A message of this turn by id."""
        return None if message_id is None else self._by_id.get(message_id)


@dataclass(frozen=True)
class Entry:
    """A message taken into the log, and what it meant there."""

    message: LAMMessage
    meaning: Meaning
    turn: Turn | None  # None before the first request
    todo: TodoState | None = None  # the ToDo it is about (assigned, done, failed)

    @property
    def performative(self) -> Performative:
        return self.message.performative


class LamLog:
    """A conversation's LAM log, read: its turns and what each message meant."""

    def __init__(self, messages: Iterable[MessageLike] = ()) -> None:
        self.messages: list[LAMMessage] = []
        self.turns: list[Turn] = []
        self.unreadable = 0  # dicts left out: not LAM messages
        self._seen: set[str] = set()
        self.add_all(messages)

    @classmethod
    def of_current_turn(cls, messages: Sequence[MessageLike]) -> LamLog:
        """The log from its latest `request` on: a reader of the current turn that validates
        nothing older (a long conversation's earlier turns cost nothing)."""
        turn: list[LAMMessage] = []
        unreadable = 0
        for raw in reversed(messages):
            message = _as_message(raw)
            if message is None:
                unreadable += 1
                continue
            turn.append(message)
            if message.performative is Performative.REQUEST:
                break
        log = cls(reversed(turn))
        log.unreadable += unreadable
        return log

    # Reading -----------------------------------------------------------------------------

    @property
    def current(self) -> Turn | None:
        """The latest turn."""
        return self.turns[-1] if self.turns else None

    def latest(self, performative: Performative) -> LAMMessage | None:
        """The newest message of a kind."""
        return next((m for m in reversed(self.messages) if m.performative is performative), None)

    def turn_of(self, key: str, value: str) -> Turn | None:
        """The turn whose request carries this metadata value (an A2A task id, say)."""
        return next((t for t in self.turns if t.request.metadata.get(key) == value), None)

    # Taking messages in ------------------------------------------------------------------

    def add_all(self, messages: Iterable[MessageLike] | None) -> list[Entry]:
        """Take messages in log order; what each new one meant."""
        entries = []
        for message in messages or ():
            entry = self.add(message)
            if entry is not None:
                entries.append(entry)
        return entries

    def add(self, message: MessageLike) -> Entry | None:
        """Take one message; what it meant, or None if it was seen before or is unreadable."""
        if isinstance(message, Mapping) and message.get("id") in self._seen:
            return None  # seen: not validated again
        parsed = _as_message(message)
        if parsed is None:
            self.unreadable += 1
            return None
        if parsed.id in self._seen:
            return None
        self._seen.add(parsed.id)
        self.messages.append(parsed)
        if parsed.performative is Performative.REQUEST:
            self.turns.append(Turn(request=parsed))
        turn = self.current
        if turn is None:
            return Entry(parsed, Meaning.OTHER, None)
        turn.messages.append(parsed)
        turn._by_id[parsed.id] = parsed
        try:
            return _read(turn, parsed)
        except (ValidationError, KeyError, TypeError, ValueError):
            self.unreadable += 1  # its content is out of shape: it means nothing here
            return Entry(parsed, Meaning.OTHER, turn)


def performative_of(message: Mapping[str, Any]) -> Performative | None:
    """The kind of a message of the log as JSON, the rest not validated again: for code on a
    hot path that only routes on the kind (a plan is validated once per turn, not by every
    step that looks for a message). None if it names no performative."""
    try:
        return Performative(str(message.get("performative")))
    except ValueError:
        return None


def _as_message(message: MessageLike) -> LAMMessage | None:
    """A message of the log, read as `to_dict` wrote it (not validated again), or None."""
    if isinstance(message, LAMMessage):
        return message
    try:
        reply_by = message.get("reply_by")
        return LAMMessage.model_construct(
            lam_version=message.get("lam_version", "1.0"),
            id=str(message["id"]),
            performative=Performative(message["performative"]),
            sender=str(message["sender"]),
            receiver=str(message["receiver"]),
            conversation_id=message.get("conversation_id"),
            in_reply_to=message.get("in_reply_to"),
            timestamp=parse_rfc3339(message["timestamp"]),
            reply_by=parse_rfc3339(reply_by) if reply_by is not None else None,
            content=dict(message.get("content") or {}),
            metadata=dict(message.get("metadata") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _read(turn: Turn, message: LAMMessage) -> Entry:
    """Fold one message into its turn; what it meant."""
    content = message.content
    match message.performative:
        case Performative.REQUEST:
            return Entry(message, Meaning.REQUEST, turn)
        case Performative.INFORM if content.get("topic") == "intent":
            turn.intent = IntentInformContent.model_validate(content)
            return Entry(message, Meaning.INTENT, turn)
        case Performative.INFORM if content.get("topic") == "answer":
            turn.answer = message
            return Entry(message, Meaning.ANSWER, turn)
        case Performative.ROUTE:
            turn.route = RouteContent.model_validate(content)
            return Entry(message, Meaning.ROUTE, turn)
        case Performative.PROPOSE:
            return _proposed(turn, message)
        case Performative.AGREE | Performative.REFUSE if _answers_proposal(turn, message):
            turn.approval = message
            if message.performative is Performative.AGREE:
                return Entry(message, Meaning.APPROVED, turn)
            for state in turn.todos.values():
                if state.status == "pending":
                    state.status = "skipped"
            return Entry(message, Meaning.REFUSED, turn)
        case Performative.ASSIGN:
            todo = message.todo()
            state = turn.todos.get(todo.id) or TodoState(todo)  # one no plan of the log has
            turn.todos[todo.id] = state
            state.status, state.assign = "running", message
            state.assigned_at, state.ended_at = message.timestamp, None
            state.output = state.error = state.failure = None
            turn._ran = True
            return Entry(message, Meaning.ASSIGNED, turn, state)
        case Performative.DONE:
            done = turn.todos.get(str(content.get("todo_id")))
            if done is not None:
                done.status, done.ended_at = "done", message.timestamp
                done.output, done.error, done.failure = content.get("output"), None, None
            return Entry(message, Meaning.TODO_DONE, turn, done)
        case Performative.FAILURE:
            return _failed(turn, message)
    return Entry(message, Meaning.OTHER, turn)


def _proposed(turn: Turn, message: LAMMessage) -> Entry:
    plan = message.plan()
    old = turn.todos
    turn.todos = {}
    for todo in plan.todos:
        state = TodoState(todo, status=todo.status, output=todo.output, error=todo.error)
        kept = old.get(todo.id)
        if kept is not None and kept.status == state.status:  # a re-plan keeps what ran
            state.assigned_at, state.ended_at, state.assign = (
                kept.assigned_at,
                kept.ended_at,
                kept.assign,
            )
        turn.todos[todo.id] = state
    turn.plans.append(plan)
    turn.proposal = message
    if turn._ran:
        turn.replans += 1
        return Entry(message, Meaning.REPLAN, turn)
    return Entry(message, Meaning.PLAN, turn)


def _answers_proposal(turn: Turn, message: LAMMessage) -> bool:
    asked = turn.message(message.in_reply_to)
    return asked is not None and asked.performative is Performative.PROPOSE


def _failed(turn: Turn, message: LAMMessage) -> Entry:
    content = message.content
    error = ErrorInfo.model_validate(content["error"])
    turn.errors.append(error)
    todo_id = content.get("todo_id")
    if todo_id is not None:
        state = turn.todos.get(str(todo_id))
        if state is not None:
            state.status, state.ended_at = "failed", message.timestamp
            state.error, state.failure = error.message, error
        turn._ran = True
        return Entry(message, Meaning.TODO_FAILED, turn, state)
    if message.sender == message.receiver:
        # The planner taking back its own work: a plan `check` refused (in reply to it), or
        # a model's answer that was no plan.
        asked = turn.message(message.in_reply_to)
        if asked is not None and asked.performative is Performative.PROPOSE:
            return Entry(message, Meaning.PLAN_SENT_BACK, turn)
        return Entry(message, Meaning.ANSWER_SENT_BACK, turn)
    turn.failure = error
    return Entry(message, Meaning.TURN_FAILED, turn)
