"""A conversation's record, computed from its LAM log: what the history keeps per conversation.

`summarize(messages, stop)` folds the log (in order) into the row a search filters on and the
ToDos and approvals of the record. It is recomputed from every stored message whenever a
conversation's messages change, so it never depends on the order the archivers stored them in.

- the request (the latest turn's), its language (the request's `locale`, else detected as the
  intent node does), the intent and the tier that decided it (`inform` topic `intent`), the
  route (`route`), the plan (the turn's last `propose`) and how many re-plans followed;
- each ToDo of that plan: its executor or tool, status, when it was assigned and finished,
  its output or error (from `assign`, `done`, `failure`; a run's stop, below, has the final
  word on status, output and error: it knows skipped ToDos too);
- each `agree`/`refuse` of a `propose`: who (sender, and the principal where the message's
  metadata names one), when, and the sha256 of the exact plan proposed;
- the answer (`inform` topic `answer`), the outcome and the status.

A `Stop` is what the server recorded where a run stopped (`graph.storage.records`): the status
(`waiting`, `done`, `failed`), the log's length then, and the conversation's plan and result.
It holds while no message came after it; messages after it (a new turn) mean `running`, unless
the turn's answer says how it ended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graph.intents.language import detect_language

PRINCIPAL = "principal"  # the metadata key that names who, behind a sender, acted


@dataclass(frozen=True)
class Stop:
    """Where a run stopped: the archive stream's entry id orders stops."""

    entry: str
    status: str
    log_length: int
    plan: dict[str, Any] | None = None
    result: Any = None

    def key(self) -> tuple[int, int]:
        ms, _, seq = self.entry.partition("-")
        return int(ms), int(seq or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "status": self.status,
            "log_length": self.log_length,
            "plan": self.plan,
            "result": self.result,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Stop | None:
        if not data:
            return None
        return cls(
            str(data["entry"]),
            str(data["status"]),
            int(data["log_length"]),
            data.get("plan"),
            data.get("result"),
        )


def newer(a: Stop | None, b: Stop | None) -> Stop | None:
    if a is None or b is None:
        return a or b
    return a if a.key() >= b.key() else b


@dataclass
class TodoRecord:
    todo_id: str
    title: str
    executor: str
    tool: str | None
    status: str = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    error: str | None = None


@dataclass
class ApprovalRecord:
    message_id: str
    decision: str
    sender: str
    principal: str | None
    decided_at: datetime
    propose_id: str | None
    plan_digest: str | None
    reason: str | None


@dataclass
class Summary:
    """The conversation row's computed fields (`graph.history.models.HistoryConversation`)."""

    principal: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: str = "running"
    request: str = ""
    language: str | None = None
    intent: str | None = None
    tier: str | None = None
    route: str | None = None
    route_reason: str | None = None
    plan: dict[str, Any] | None = None
    replans: int = 0
    outcome: str | None = None
    error: dict[str, Any] | None = None
    answer: str | None = None
    result: Any = None
    turns: int = 0
    message_count: int = 0
    search_text: str = ""
    todos: list[TodoRecord] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)


def sent_at(message: dict[str, Any]) -> datetime:
    """The message's timestamp (RFC 3339, as LAM writes it) as an aware UTC datetime."""
    raw = message.get("timestamp")
    if not isinstance(raw, str):
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def principal_of(message: dict[str, Any]) -> str | None:
    metadata = message.get("metadata")
    value = metadata.get(PRINCIPAL) if isinstance(metadata, dict) else None
    return str(value) if value else None


def plan_digest(plan: Any) -> str:
    """sha256 of the plan's canonical JSON (sorted keys, no spaces): what was agreed to."""
    canonical = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def language_of(request: dict[str, Any]) -> str:
    content = request.get("content") or {}
    locale = content.get("locale")
    if isinstance(locale, str) and locale[:2].lower() in ("en", "de"):
        return locale[:2].lower()
    return detect_language(str(content.get("text", "")))


def _topic(message: dict[str, Any], topic: str) -> bool:
    return (
        message["performative"] == "inform" and (message.get("content") or {}).get("topic") == topic
    )


def summarize(messages: Sequence[dict[str, Any]], stop: Stop | None) -> Summary:
    """The record's computed fields from the whole log, in order (see the module's doc)."""
    out = Summary(message_count=len(messages))
    if not messages:
        return out
    times = [sent_at(m) for m in messages]
    out.created_at, out.updated_at = min(times), max(times)
    proposes: dict[str, dict[str, Any]] = {}
    texts: list[str] = []
    turn_start = 0
    for index, message in enumerate(messages):
        performative = message["performative"]
        content = message.get("content") or {}
        if performative == "request":
            out.turns += 1
            turn_start = index
            texts.append(str(content.get("text", "")))
            out.principal = out.principal or principal_of(message)
        elif performative == "propose":
            proposes[message["id"]] = message
        elif performative in ("agree", "refuse") and message.get("in_reply_to") in proposes:
            propose = proposes[message["in_reply_to"]]
            reason = content.get("reason") if performative == "refuse" else content.get("comment")
            out.approvals.append(
                ApprovalRecord(
                    message_id=message["id"],
                    decision=performative,
                    sender=str(message["sender"]),
                    principal=principal_of(message),
                    decided_at=times[index],
                    propose_id=propose["id"],
                    plan_digest=plan_digest((propose.get("content") or {}).get("plan")),
                    reason=str(reason) if reason is not None else None,
                )
            )
        elif performative == "failure" and "error" in content:
            texts.append(str(content["error"].get("message", "")))
    out.principal = out.principal or next(filter(None, map(principal_of, messages)), None)
    _turn(out, messages[turn_start:], times[turn_start:])
    status = _status(out, messages, stop)
    out.status = status
    out.outcome = _outcome(out, messages[turn_start:], status)
    if out.answer:
        texts.append(out.answer)
    out.search_text = "\n".join(t for t in texts if t).lower()
    return out


def _turn(out: Summary, turn: Sequence[dict[str, Any]], times: Sequence[datetime]) -> None:
    """What the latest turn decided, planned, ran and answered."""
    plans = 0
    todos: dict[str, TodoRecord] = {}
    for message, at in zip(turn, times, strict=True):
        performative = message["performative"]
        content = message.get("content") or {}
        if performative == "request":
            out.request = str(content.get("text", ""))
            out.language = language_of(message)
        elif _topic(message, "intent"):
            out.intent = content.get("intent")
            out.tier = content.get("source")
        elif performative == "route":
            out.route, out.route_reason = content.get("target"), content.get("reason")
        elif performative == "propose":
            plans += 1
            out.plan = content.get("plan")
            todos = _plan_todos(out.plan)
        elif performative == "assign":
            todo = content.get("todo") or {}
            record = todos.get(str(todo.get("id")))
            if record is not None:
                record.status, record.started_at = "running", at
                record.finished_at, record.output, record.error = None, None, None
        elif performative == "done" and content.get("todo_id") in todos:
            record = todos[content["todo_id"]]
            record.status, record.finished_at, record.output = "done", at, content.get("output")
        elif performative == "failure":
            error = content.get("error") or {}
            if content.get("todo_id") in todos:
                record = todos[content["todo_id"]]
                record.status, record.finished_at = "failed", at
                record.error = f"{error.get('code')}: {error.get('message')}"
            else:
                out.error = {"code": error.get("code"), "message": error.get("message")}
        elif _topic(message, "answer"):
            out.answer = content.get("text")
    out.replans = max(plans - 1, 0)
    out.todos = list(todos.values())


def _plan_todos(plan: Any) -> dict[str, TodoRecord]:
    todos: dict[str, TodoRecord] = {}
    for todo in (plan or {}).get("todos") or []:
        tool = todo.get("tool")
        todos[str(todo["id"])] = TodoRecord(
            todo_id=str(todo["id"]),
            title=str(todo.get("title", "")),
            executor=str(todo.get("executor", "")),
            tool=str(tool["name"]) if isinstance(tool, dict) and tool.get("name") else None,
        )
    return todos


def _status(out: Summary, messages: Sequence[dict[str, Any]], stop: Stop | None) -> str:
    if stop is not None and stop.log_length >= len(messages):
        # No message after the stop: the server's word on where it stands, and the run's
        # final say on each ToDo (skipped ones have no message of their own).
        out.result = stop.result
        final = {str(t["id"]): t for t in ((stop.plan or {}).get("todos") or [])}
        for record in out.todos:
            todo = final.get(record.todo_id)
            if todo is not None:
                record.status = str(todo.get("status", record.status))
                record.output = todo.get("output", record.output)
                record.error = todo.get("error", record.error)
        return stop.status
    last = messages[-1]
    if _topic(last, "answer"):
        return str((last.get("content") or {}).get("status") or "done")
    return "running"


def _outcome(out: Summary, turn: Sequence[dict[str, Any]], status: str) -> str | None:
    if status in ("running", "waiting"):
        return None
    if any(m["performative"] == "refuse" for m in turn):
        return "refused"
    if status == "failed":
        return str((out.error or {}).get("code") or "failed")
    return status
