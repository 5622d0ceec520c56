"""What a conversation looks like in a terminal: the model (`cli.view_model`), drawn with rich.

`LiveView` draws a `ConversationModel` (a live table on a terminal, one line per event
otherwise) while the conversation runs; `render_show` draws a stored conversation for
`cpa-planner show`, its LAM log included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from cli.view_model import (
    ICONS,
    MODEL_STEPS,
    STYLES,
    ConversationModel,
    LamDict,
    TodoRow,
    elapsed,
    messages_of,
    short,
    who_answers,
)
from lam import Performative
from lam.log import Entry, LamLog, Meaning

__all__ = [
    "MODEL_STEPS",
    "ConversationModel",
    "LamDict",
    "LiveView",
    "TodoRow",
    "elapsed",
    "log_table",
    "plan_table",
    "render",
    "render_show",
    "short",
    "summary",
    "who_answers",
]


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
    for _ in messages_of(waiting, Performative.PROPOSE):
        parts.append(Text("\nWaiting for the plan's approval", style="magenta"))
    messages = list(state.get("messages") or [])
    parts.extend([Text(""), Text(f"LAM log ({len(messages)} messages)", style="bold cyan")])
    parts.append(log_table(messages))
    return Group(*parts)
