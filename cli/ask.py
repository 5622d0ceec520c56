"""Asking the person at the terminal: plan approvals, `human` ToDos, and `desktop` ToDos.

Prompts go to standard error (standard output is the live view, or the one JSON object of
--json); answers are read from standard input, and only when it is a terminal: with no one
there to ask, the conversation is left waiting (see `Asker.can_ask`).
Every answer becomes the LAM message that answers what waits (`agree`/`refuse` a
`propose`; `done`/`failure` an `assign`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from cli.view import LamDict, short
from lam import LAMMessage, MessageFactory, Performative
from lam.log import performative_of


class NoAnswer(Exception):
    """The person closed standard input (Ctrl-D): leave the conversation waiting."""


class Asker:
    def __init__(
        self,
        console: Console,
        *,
        stdin: TextIO | None = None,
        yes: bool = False,
        interactive: bool = True,
        local: bool = True,
    ) -> None:
        self.console = console
        self.stdin = stdin or sys.stdin
        self.yes = yes
        self.interactive = interactive and self.stdin.isatty()
        self.local = local

    # What can be answered here ----------------------------------------------------------

    def answers_here(self, message: Mapping[str, Any]) -> bool:
        """Whether this terminal answers the message (remote: the desktop agent answers its own)."""
        if performative_of(message) is Performative.PROPOSE:
            return True
        return self.local or message.get("receiver") == "user"

    def can_ask(self, waiting: list[LamDict]) -> bool:
        """Whether every waiting message can be answered without hanging."""
        mine = [m for m in waiting if self.answers_here(m)]
        if self.interactive:
            return True
        return all(self.yes and performative_of(m) is Performative.PROPOSE for m in mine)

    def answer_all(self, waiting: list[LamDict]) -> list[LAMMessage]:
        return [self.answer(m) for m in waiting if self.answers_here(m)]

    def answer(self, message: LamDict) -> LAMMessage:
        lam = LAMMessage.from_dict(message)
        if lam.performative == Performative.PROPOSE:
            return self._approve(lam)
        if lam.receiver == "user":
            return self._human(lam)
        return self._desktop(lam)

    # Reading ------------------------------------------------------------------------------

    def _read(self, prompt: str) -> str:
        self.console.print(Text(prompt, style="bold"), end="")
        self.console.file.flush()
        line = self.stdin.readline()
        if not line:
            self.console.print()
            raise NoAnswer
        return line.strip()

    def _choice(self, prompt: str, yes: tuple[str, ...], no: tuple[str, ...]) -> bool:
        while True:
            answer = self._read(prompt).lower()
            if answer in yes:
                return True
            if answer in no:
                return False
            self.console.print(f"Please type {yes[0]} or {no[0]}.", style="yellow")

    # The three kinds of question ----------------------------------------------------------

    def _approve(self, propose: LAMMessage) -> LAMMessage:
        me = MessageFactory(propose.receiver, propose.conversation_id)
        if self.yes:
            self.console.print("Plan approved (--yes).", style="green")
            return me.agree(propose, comment="approved with --yes")
        plan = propose.content.get("plan") or {}
        lines = [Text(str(plan.get("goal", "")), style="bold")]
        for todo in plan.get("todos") or []:
            after = (
                f" (after {', '.join(todo.get('depends_on') or [])})"
                if todo.get("depends_on")
                else ""
            )
            flag = "  ⚑ asks for approval" if todo.get("requires_approval") else ""
            lines.append(
                Text(f"  {todo['id']}  {todo['title']}  [{todo['executor']}]{after}{flag}")
            )
        self.console.print(Panel(Group(*lines), title="Approve this plan?", title_align="left"))
        if self._choice("Carry out this plan? [y/n] ", ("y", "yes"), ("n", "no")):
            return me.agree(propose)
        reason = self._read("Why not? (Enter to skip) ") or "refused at the terminal"
        return me.refuse(propose, reason)

    def _todo_panel(self, assign: LAMMessage, title: str) -> RenderableType:
        todo = assign.content.get("todo") or {}
        inputs = assign.content.get("inputs") or {}
        body: list[RenderableType] = [Text(str(todo.get("title", "")), style="bold")]
        if todo.get("description"):
            body.append(Text(str(todo["description"])))
        for dep, output in (inputs.get("dependencies") or {}).items():
            body.append(Text(f"{dep} gave: {short(output, 300)}", style="cyan"))
        for key, value in inputs.items():
            if key not in ("dependencies", "request"):
                body.append(Text(f"{key}: {short(value, 200)}", style="dim"))
        return Panel(Group(*body), title=f"{todo.get('id')} · {title}", title_align="left")

    def _human(self, assign: LAMMessage) -> LAMMessage:
        me = MessageFactory(assign.receiver, assign.conversation_id)
        self.console.print(self._todo_panel(assign, "a question for you"))
        while True:
            answer = self._read("Your answer: ")
            if answer:
                return me.done(assign, answer)
            self.console.print("An answer is needed (Ctrl-C stops and keeps it waiting).")

    def _desktop(self, assign: LAMMessage) -> LAMMessage:
        me = MessageFactory(assign.receiver, assign.conversation_id)
        todo = assign.content.get("todo") or {}
        agent = "the desktop agent" if assign.receiver == "cpa-desktop" else assign.receiver
        self.console.print(self._todo_panel(assign, f"a ToDo for {agent}"))
        self.console.print(
            f"This runs locally, so {agent} is you: do this yourself, then say how it went. "
            "(With --server, the desktop agent connected to the server gets it instead.)",
            style="dim",
        )
        if self._choice("Done? [y = done / n = it failed] ", ("y", "yes", "done"), ("n", "no")):
            output = self._read("What came of it? (Enter to skip) ")
            return me.done(assign, output or None)
        reason = self._read("What went wrong? ") or "not done"
        # The code says what kind of failure (the answer shows "failed (not_done: reason)").
        return me.failure(
            assign.sender,
            "not_done",
            reason,
            todo_id=str(todo.get("id")),
            in_reply_to=assign.id,
        )
