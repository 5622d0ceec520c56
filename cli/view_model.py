"""A conversation as the terminal shows it, built from its LAM messages as they arrive.

`ConversationModel` reads LAM messages as they come (`lam.log.LamLog`: what each one
meant) and, between steps, the conversation's view, into what is shown: intent and who
chose it, the plan, each ToDo's status and timing, the answer;
and, as passing news, which step waits on a model, the answer as the model writes it, and
a streamed plan as the planner writes it (`graph.plan_stream`: its steps start before
its `propose` is logged, so the plan is shown from the news until then).
Drawing it is `cli.view`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graph.plan_stream import WRITTEN
from lam import LAMMessage, LAMValidationError, Performative
from lam.log import Entry, LamLog, Meaning, TodoState, Turn

LamDict = dict[str, Any]

STYLES = {
    "pending": "dim",
    "running": "yellow",
    "waiting": "magenta",
    "done": "green",
    "failed": "red",
    "skipped": "dim",
}
ICONS = {"pending": "·", "waiting": "⏸", "done": "✓", "failed": "✗", "skipped": "↷"}
# The graph's steps that wait on a model, as a person calls them.
MODEL_STEPS = {
    "intent": "router",
    "plan": "planner",
    "replan": "replan",
    "respond": "answer",
    "execute": "ToDo",
}


def elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def short(value: Any, width: int = 100) -> str:
    """A value on one line, cut to `width` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def who_answers(message: Mapping[str, Any], *, local: bool) -> str:
    """Who a waiting `assign` waits for, in words."""
    receiver = str(message.get("receiver", ""))
    if receiver == "user" or receiver.startswith("user:"):
        return "you"
    if receiver == "cpa-desktop":
        return "you (desktop agent)" if local else "the desktop agent"
    return f"you (as {receiver})" if local else receiver


@dataclass
class TodoRow:
    id: str
    title: str
    executor: str
    depends_on: list[str]
    status: str = "pending"
    started: float | None = None
    ended: float | None = None
    output: Any = None
    error: str | None = None
    waiting_for: str | None = None

    def seconds(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started

    def same_step(self, other: TodoRow) -> bool:
        return (self.id, self.title, self.executor, self.depends_on) == (
            other.id,
            other.title,
            other.executor,
            other.depends_on,
        )

    @classmethod
    def of(cls, todo: Mapping[str, Any]) -> TodoRow:
        """A row for a ToDo in its wire form (a plan from the view or the news)."""
        status = str(todo.get("status") or "pending")
        return cls(
            id=str(todo.get("id")),
            title=str(todo.get("title", "")),
            executor=str(todo.get("executor", "")),
            depends_on=[str(d) for d in todo.get("depends_on") or []],
            status=status if status in STYLES else "pending",
            output=todo.get("output"),
            error=todo.get("error"),
        )


@dataclass
class ConversationModel:
    """The conversation as the terminal shows it; fed LAM messages in log order."""

    conversation_id: str = ""
    request: str = ""
    intent: str | None = None
    intent_source: str | None = None
    intent_rule: str | None = None
    confidence: float | None = None
    route: str | None = None
    route_reason: str | None = None
    goal: str | None = None
    todos: dict[str, TodoRow] = field(default_factory=dict)
    answer: str | None = None
    status: str = "running"
    error: dict[str, Any] | None = None
    result: Any = None
    refused: str | None = None  # the reason a plan was refused: its ToDos never run
    log: LamLog = field(default_factory=LamLog)
    # Passing news (never in the log): the step waiting on a model, since when; the answer
    # so far, as the model writes it.
    model_wait: dict[str, Any] | None = None
    model_wait_since: float | None = None
    draft: str = ""

    def activity(self, event: Mapping[str, Any], now: float) -> str | None:
        """Take one piece of news from the run; returns a line for the plain output."""
        written = event.get(WRITTEN)
        if isinstance(written, Mapping):
            return "\n".join(self.show_plan(written, being_written=True)) or None
        llm = event.get("llm")
        if isinstance(llm, Mapping):
            if llm.get("phase") == "start":
                self.model_wait, self.model_wait_since = dict(llm), now
                return self.wait_line(None)
            if self.model_wait is not None and self.model_wait.get("node") == llm.get("node"):
                self.model_wait = self.model_wait_since = None
            return None
        token = event.get("token")
        if isinstance(token, Mapping) and isinstance(token.get("text"), str):
            self.draft += token["text"]
        return None

    def wait_line(self, now: float | None) -> str | None:
        """What waits on which model, e.g. "planner: waiting for the planner model (smollm2)
        to plan this request"; with the time waited so far when `now` is given."""
        wait = self.model_wait
        if wait is None:
            return None
        node = str(wait.get("node") or "")
        step = MODEL_STEPS.get(node, node or "a step")
        what = str(wait.get("what") or "answer")
        if node == "respond" and what.startswith("summarise"):
            step = "summary"
        since = self.model_wait_since
        took = f" ({elapsed(now - since)})" if now is not None and since is not None else ""
        model = f"the {wait.get('role')} model ({wait.get('model')})"
        return f"{step}: waiting for {model} to {what}{took}"

    def feed(self, message: Mapping[str, Any]) -> list[str]:
        """Take one LAM message; returns what happened, as lines for the plain output."""
        entry = self.log.add(message)
        if entry is None:
            return []  # seen before, or no LAM message
        if not self.conversation_id and entry.message.conversation_id:
            self.conversation_id = entry.message.conversation_id
        turn = entry.turn
        return [] if turn is None else self._lines(entry, turn)

    def _lines(self, entry: Entry, turn: Turn) -> list[str]:
        when = entry.message.timestamp.timestamp()
        match entry.meaning:
            case Meaning.REQUEST:
                known, self.request = self.request, turn.text
                return [] if known else [f"Request: {self.request}"]
            case Meaning.INTENT if turn.intent is not None:
                self.intent, self.intent_source = turn.intent.intent, turn.intent.source
                self.confidence = turn.intent.confidence
                return [f"Intent: {self.intent_line()}"]
            case Meaning.ROUTE if turn.route is not None:
                self.route, self.route_reason = turn.route.target, turn.route.reason
                return [f"Route: {self.route_line()}"]
            case Meaning.PLAN | Meaning.REPLAN if turn.plan is not None:
                return self._plan(turn)
            case Meaning.ASSIGNED | Meaning.TODO_DONE | Meaning.TODO_FAILED if entry.todo:
                row = self.todos.get(entry.todo.todo.id)
                return [] if row is None else self._todo_moved(row, entry.todo, when)
            case Meaning.TURN_FAILED if turn.failure is not None:
                self.error = turn.failure.model_dump()
            case Meaning.REFUSED:
                self.refused = turn.refused
                self._not_run()
                return [f"Plan refused: {self.refused}"]
            case Meaning.ANSWER:
                self.answer = turn.answer_text
                if turn.outcome is not None:
                    self.status = "failed" if turn.outcome == "failed" else "done"
        return []

    def _todo_moved(self, row: TodoRow, todo: TodoState, when: float) -> list[str]:
        row.status, row.output = todo.status, todo.output
        if todo.status == "running":
            row.started, row.ended, row.error = when, None, None
            return [f"{row.id} started: {row.title} [{row.executor}]"]
        row.ended, row.waiting_for = when, None
        took = elapsed(row.seconds(when))
        if todo.status == "done":
            row.error = None
            shown = f": {short(row.output, 80)}" if row.output not in (None, "") else ""
            return [f"{row.id} done in {took}{shown}"]
        row.error = todo.error or ""
        return [f"{row.id} failed after {took}: {row.error}"]

    def _plan(self, turn: Turn) -> list[str]:
        plan = turn.plan
        assert plan is not None
        self.goal = plan.goal
        old = self.todos
        self.todos = {}
        for tid, todo in turn.todos.items():
            row = TodoRow(
                id=tid,
                title=todo.todo.title,
                executor=todo.executor,
                depends_on=list(todo.todo.depends_on),
                status=todo.status,
                output=todo.output,
                error=todo.error,
            )
            kept = old.get(tid)
            if kept is not None and kept.same_step(row):
                if kept.status == row.status:
                    row.started, row.ended = kept.started, kept.ended
                elif row.status == "pending" and kept.status in ("running", "done", "failed"):
                    row = kept  # started while the plan was written (the proposal is as written)
            self.todos[tid] = row
        lines = [f"Plan: {self.goal}"]
        for row in self.todos.values():
            after = f", after {', '.join(row.depends_on)}" if row.depends_on else ""
            lines.append(f"  {row.id}  {row.title}  [{row.executor}{after}]")
        return lines

    def show_plan(self, plan: Mapping[str, Any], *, being_written: bool = False) -> list[str]:
        """Rows for a plan not proposed yet: the plan as it is written (the news, the view
        mid-`plan`). A row already shown for the same step keeps its state and times;
        returns lines for the steps new to the view."""
        old, self.todos = self.todos, {}
        goal = str(plan.get("goal") or "")
        heading = "Plan (being written)" if being_written else "Plan"
        lines = [] if goal == self.goal else [f"{heading}: {goal}"]
        self.goal = goal
        for todo in plan.get("todos") or []:
            row = TodoRow.of(todo)
            kept = old.get(row.id)
            if kept is not None and kept.same_step(row):
                if kept.status == "pending" and row.status != "pending":
                    kept.status, kept.output, kept.error = row.status, row.output, row.error
                row = kept
            else:
                after = f", after {', '.join(row.depends_on)}" if row.depends_on else ""
                lines.append(f"  {row.id}  {row.title}  [{row.executor}{after}]")
            self.todos[row.id] = row
        return lines

    def _not_run(self) -> None:
        """The ToDos of a refused plan: skipped, not pending (nothing will run them)."""
        for row in self.todos.values():
            if row.status == "pending":
                row.status, row.error = "skipped", "plan refused"

    def sync(self, state: Mapping[str, Any], waiting: list[LamDict], *, local: bool) -> None:
        """Catch up with the conversation's view (statuses from an unfinished step, waits)."""
        for message in state.get("messages") or []:
            self.feed(message)
        if not self.conversation_id:
            self.conversation_id = str(state.get("conversation_id", ""))
        intent = state.get("intent")
        if isinstance(intent, Mapping):  # the local view has who chose it and by which rule
            self.intent = intent.get("intent", self.intent)
            self.intent_source = intent.get("source", self.intent_source)
            self.intent_rule = intent.get("rule", self.intent_rule)
            self.confidence = intent.get("confidence", self.confidence)
        elif isinstance(intent, str):
            self.intent = intent
        plan = state.get("plan")
        if isinstance(plan, Mapping):
            shown = [(r.id, r.title) for r in self.todos.values()]
            if [(t.get("id"), t.get("title")) for t in plan.get("todos") or []] != shown:
                self.show_plan(plan)  # not proposed yet: being written (streamed plans)
            for todo in plan.get("todos") or []:
                row = self.todos.get(str(todo.get("id")))
                if row is not None and todo.get("status") in STYLES:
                    row.status = str(todo["status"])
                    if row.status in ("done", "failed"):
                        row.output = todo.get("output", row.output)
                        row.error = todo.get("error", row.error)
        for row in self.todos.values():
            row.waiting_for = None
        for message in messages_of(waiting, Performative.ASSIGN):
            row = self.todos.get(message.todo().id)
            if row is not None:
                row.status = "waiting"
                row.waiting_for = who_answers(message.to_dict(), local=local)
        status = state.get("status")
        if isinstance(status, str):
            self.status = status
        self.result = state.get("result")
        result = self.result if isinstance(self.result, Mapping) else {}
        if isinstance(result.get("error"), Mapping):
            self.error = dict(result["error"])
        if "refused" in result:
            self.refused = str(result["refused"])
        if self.refused is not None:
            self._not_run()

    # Text -----------------------------------------------------------------------------

    def intent_line(self) -> str:
        if self.intent is None:
            return "not decided"
        who = {
            "rules": "the rules",
            "classifier": "the classifier",
            "llm": "the LLM",
        }.get(str(self.intent_source), "?")
        extra = [f"rule {self.intent_rule}"] if self.intent_rule else []
        if isinstance(self.confidence, int | float):
            extra.append(f"confidence {self.confidence:.2f}")
        detail = f" ({', '.join(extra)})" if extra else ""
        return f"{self.intent} · chosen by {who}{detail}"

    def route_line(self) -> str:
        """Where the front door sent the request, and why."""
        where = {
            "template": "the intent's template",
            "planner": "the LLM planner",
            "answer": "answered directly",
        }.get(str(self.route), str(self.route))
        return f"{where} · {self.route_reason}" if self.route_reason else where

    def stage(self, now: float | None = None) -> str | None:
        """What is happening: the step waiting on a model, or before there is a plan to show."""
        if self.answer is not None or self.error is not None or self.status in ("done", "failed"):
            return None
        if self.model_wait is not None:
            return self.wait_line(time.time() if now is None else now)
        if self.goal is not None:
            return None  # the plan is there to show
        if self.route is None:
            return "classifying the request"
        return "answering" if self.route == "answer" else "planning"


def messages_of(raw: list[LamDict], performative: Performative) -> list[LAMMessage]:
    """The messages of one kind among `raw` (an inbox: no turn to read them in)."""
    found = []
    for item in raw:
        try:
            message = LAMMessage.from_dict(item, max_bytes=None)
        except LAMValidationError:
            continue
        if message.performative is performative:
            found.append(message)
    return found
