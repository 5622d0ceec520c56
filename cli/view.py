"""What a conversation looks like in a terminal: built from its LAM messages as they arrive.

`ConversationModel` reads LAM messages as they come (`lam.log.LamLog`: what each one
meant) and, between steps, the conversation's view, into what is shown: intent and who
chose it, the plan, each ToDo's status and timing, the answer;
and, as passing news, which step waits on a model, the answer as the model writes it, and
a streamed plan as the planner writes it (`graph.plan_stream`: its steps start before
its `propose` is logged, so the plan is shown from the news until then).
`LiveView` draws it with rich (a live table on a terminal, one line per event otherwise);
`render_show` draws a stored conversation for `cpa-planner show`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

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
        lines = [] if goal == self.goal else [f"Plan{' (being written)' if being_written else ''}: {goal}"]
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
        for message in _messages(waiting, Performative.ASSIGN):
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


def _status_cell(row: TodoRow) -> RenderableType:
    style = STYLES.get(row.status, "")
    if row.status == "running":
        return Spinner("dots", text=Text("running", style=style), style=style)
    if row.status == "waiting":
        return Text(f"⏸ waiting for {row.waiting_for or 'an answer'}", style=style)
    return Text(f"{ICONS.get(row.status, '?')} {row.status}", style=style)


def _todo_cell(row: TodoRow) -> Text:
    text = Text(row.title)
    if row.status == "done" and row.output not in (None, "", {}):
        text.append(f"\n→ {short(row.output, 90)}", style="dim")
    elif row.status in ("failed", "skipped") and row.error:
        text.append(f"\n{short(row.error, 90)}", style=STYLES[row.status])
    return text


def plan_table(model: ConversationModel, now: float | None = None) -> Table:
    now = time.time() if now is None else now
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    # At 80 columns the title and the status wrap; an id, an executor or a time never does.
    table.add_column("", no_wrap=True)
    table.add_column("ToDo", ratio=3, min_width=16)
    table.add_column("executor", no_wrap=True)
    table.add_column("after", no_wrap=False, min_width=5)
    table.add_column("status", ratio=2, min_width=12)
    table.add_column("time", justify="right", no_wrap=True, min_width=5)
    for row in model.todos.values():
        table.add_row(
            Text(row.id, style="bold"),
            _todo_cell(row),
            row.executor,
            ", ".join(row.depends_on) or "—",
            _status_cell(row),
            elapsed(row.seconds(now)),
        )
    return table


def render(
    model: ConversationModel, *, now: float | None = None, header: bool = True
) -> RenderableType:
    """Everything about the conversation, as one renderable (one live frame).

    `header=False` leaves out the lines about the conversation, request, intent and plan:
    a terminal that already shows them above a prompt gets only what changes.
    """
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold cyan", no_wrap=True)
    head.add_column()
    head.add_row("Conversation", model.conversation_id or "…")
    if model.request:
        head.add_row("Request", model.request)
    stage = model.stage(now)
    if model.intent is not None or stage is None:
        head.add_row("Intent", model.intent_line())
    if model.route is not None:
        head.add_row("Route", model.route_line())
    if model.goal is not None:
        head.add_row("Plan", model.goal)
    parts: list[RenderableType] = [head] if header else []
    if stage is not None:
        parts.append(Spinner("dots", text=Text(stage + "…", style="yellow"), style="yellow"))
    if model.todos:
        parts.extend([Text(""), plan_table(model, now)] if header else [plan_table(model, now)])
    if model.answer is None and model.draft:
        parts.append(Text(""))
        parts.append(
            Panel(
                Text(model.draft + "▍"),
                title="Answer (being written)",
                title_align="left",
                border_style="yellow",
            )
        )
    if model.answer is not None and model.error is None:
        ok = model.status != "failed"
        parts.append(Text(""))
        parts.append(
            Panel(
                Text(model.answer),
                title="Answer",
                title_align="left",
                border_style="green" if ok else "red",
            )
        )
    return Group(*parts)


class LiveView:
    """Shows a conversation while it runs: a live frame on a terminal, event lines otherwise.

    `quiet` (for --json) shows nothing. Messages arrive on the event loop's thread while
    rich redraws from its own thread, hence the lock.
    """

    def __init__(self, console: Console, *, quiet: bool = False, local: bool = True) -> None:
        self.console = console
        self.quiet = quiet
        self.local = local
        self.model = ConversationModel()
        self.live_mode = console.is_terminal and not console.is_dumb_terminal
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._header_done = False

    def __rich__(self) -> RenderableType:
        with self._lock:
            return render(self.model, header=not self._header_done)

    @contextmanager
    def running(self) -> Iterator[None]:
        """While the graph runs: redraw the live frame (terminal only)."""
        if self.quiet or not self.live_mode:
            yield
            return
        live = Live(self, console=self.console, refresh_per_second=8, transient=False)
        self._live = live
        live.start()
        try:
            yield
        finally:
            self._live = None
            live.stop()  # the frame stays on screen, header included: later frames omit it
            self._header_done = True

    def begin(self, conversation_id: str, request: str | None = None) -> None:
        with self._lock:
            self.model.conversation_id = conversation_id
            if request:
                self.model.request = request
        if not self.quiet and not self.live_mode:
            self.console.print(f"Conversation {conversation_id}")
            if request:
                self.console.print(f"Request: {request}")
            self._header_done = True

    def on_message(self, message: LamDict) -> None:
        with self._lock:
            lines = self.model.feed(message)
        if self._live is not None:
            self._live.refresh()
        elif not self.quiet and not self.live_mode:
            for line in lines:
                self.console.print(line, markup=False, highlight=False)

    def on_activity(self, event: dict[str, Any]) -> None:
        """News from the run that is not in the log: a model wait, a piece of the answer."""
        with self._lock:
            line = self.model.activity(event, time.time())
        if self._live is not None:
            self._live.refresh()
        elif line is not None and not self.quiet and not self.live_mode:
            self.console.print(line, markup=False, highlight=False)

    def sync(self, state: Mapping[str, Any], waiting: list[LamDict]) -> None:
        for message in state.get("messages") or []:
            self.on_message(message)  # what the stream did not show (a resume: all of it)
        with self._lock:
            before = {r.id: r.status for r in self.model.todos.values()}
            self.model.sync(state, waiting, local=self.local)
            rows = list(self.model.todos.values())
        if self.quiet or self.live_mode:
            return
        for row in rows:
            if row.status == "waiting" and before.get(row.id) != "waiting":
                self.console.print(f"{row.id} waiting for {row.waiting_for}", markup=False)

    def finish(self) -> None:
        """The end: the answer (plain output; the live frame already has it)."""
        if self.quiet or self.live_mode:
            return
        model = self.model
        if model.answer is not None and model.error is None:
            self.console.print(f"Answer ({model.status}):", markup=False)
            self.console.print(model.answer, markup=False, highlight=False)


# `cpa-planner show` -----------------------------------------------------------------------


def _messages(raw: list[LamDict], performative: Performative) -> list[LAMMessage]:
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


def summary(entry: Entry) -> str:
    """One line about one LAM message."""
    c: Mapping[str, Any] = entry.message.content
    match entry.meaning:
        case Meaning.REQUEST:
            return short(c.get("text"))
        case Meaning.INTENT:
            return f"intent {c.get('intent')} ({c.get('source')}, {c.get('confidence')})"
        case Meaning.ANSWER:
            return f"answer ({c.get('status')}): {short(c.get('text'), 80)}"
        case Meaning.ROUTE:
            return f"→ {c.get('target')}: {short(c.get('reason'), 80)}"
        case Meaning.PLAN | Meaning.REPLAN:
            plan = c.get("plan") or {}
            return f"plan of {len(plan.get('todos') or [])} ToDos: {short(plan.get('goal'), 70)}"
        case Meaning.ASSIGNED:
            todo = c.get("todo") or {}
            return f"{todo.get('id')}: {short(todo.get('title'), 80)}"
        case Meaning.TODO_DONE:
            return f"{c.get('todo_id')}: {short(c.get('output'), 80)}"
    match entry.performative:
        case Performative.FAILURE:
            error = c.get("error") or {}
            where = f"{c.get('todo_id')}: " if c.get("todo_id") else ""
            return f"{where}{error.get('code')}: {short(error.get('message'), 80)}"
        case Performative.REFUSE:
            return short(c.get("reason"))
        case Performative.AGREE:
            return short(c.get("comment"))
    return short(dict(c), 90)


def log_table(messages: list[LamDict]) -> Table:
    """The LAM log, one message a row (those that are no LAM message left out)."""
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("time", style="dim", no_wrap=True)
    table.add_column("message", no_wrap=True)
    table.add_column("from → to", no_wrap=True)
    table.add_column("content", ratio=1, min_width=30)
    for n, entry in enumerate(LamLog().add_all(messages), 1):
        message = entry.message
        table.add_row(
            str(n),
            message.timestamp.strftime("%H:%M:%S"),
            Text(message.performative.value, style="bold"),
            f"{message.sender} → {message.receiver}",
            Text(summary(entry)),
        )
    return table


def render_show(state: Mapping[str, Any], waiting: list[LamDict], *, local: bool) -> RenderableType:
    model = ConversationModel()
    model.sync(state, waiting, local=local)
    status = str(state.get("status", "?"))
    head = render(model)
    status_line = Text.assemble(
        ("Status       ", "bold cyan"), (status, STYLES.get(status, "bold"))
    )
    parts: list[RenderableType] = [status_line, head]
    if model.error is not None:
        parts.append(Text(f"\nError: {model.error.get('message')}", style="red"))
    for _ in _messages(waiting, Performative.PROPOSE):
        parts.append(Text("\nWaiting for the plan's approval", style="magenta"))
    messages = list(state.get("messages") or [])
    parts.extend([Text(""), Text(f"LAM log ({len(messages)} messages)", style="bold cyan")])
    parts.append(log_table(messages))
    return Group(*parts)
