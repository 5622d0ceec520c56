"""`cpa-planner run`, `resume` and `show`: one conversation, locally or through --server."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console

from cli.ask import Asker, NoAnswer
from cli.exits import FAILED, INTERRUPTED, OK, USAGE, WAITING, CLIError
from cli.settings import CliSettings
from cli.view import LamDict, LiveView, render_show, who_answers
from lam import LAMMessage, Performative
from lam.log import performative_of

_SKIP: Any = object()  # nothing to run: look at the conversation as it is


def say(line: str) -> None:
    """A message for the person, on standard error, never wrapped (it may be copied)."""
    print(line, file=sys.stderr, flush=True)


class Backend(Protocol):
    local: bool

    def open(self) -> None: ...
    def close(self) -> None: ...
    def start(self, request: str) -> tuple[str, Any]: ...
    def advance(
        self,
        cid: str,
        payload: Any,
        on_message: Callable[[LamDict], None],
        on_state: Callable[[dict[str, Any], list[LamDict]], None] | None = None,
        *,
        wait_for_others: bool = True,
        on_activity: Callable[[dict[str, Any]], None] | None = None,
    ) -> None: ...
    def state(self, cid: str) -> tuple[dict[str, Any], list[LamDict]]: ...
    def public(self, state: dict[str, Any]) -> dict[str, Any]: ...
    def answer(self, cid: str, answers: list[LAMMessage]) -> Any: ...
    def continue_payload(self) -> Any: ...
    def resume_hint(self, cid: str) -> str: ...
    def inbox_url(self, cid: str, receiver: str) -> str | None: ...
    def tools(self, request: str | None) -> dict[str, Any]: ...


def consoles() -> tuple[Console, Console]:
    """Standard output (the view, or the JSON) and standard error (prompts, messages)."""
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # Piped into a file or a pager: rich would assume 80 columns and squash the tables.
        out = Console(highlight=False, width=120)
    return out, Console(stderr=True, highlight=False)


@contextmanager
def backend_for(args: argparse.Namespace) -> Iterator[Backend]:
    env = CliSettings.from_env()
    server = getattr(args, "server", None) or env.server_url
    backend: Backend
    if server:
        from cli.remote import RemoteBackend

        api_key = getattr(args, "api_key", None) or env.api_key
        backend = RemoteBackend(server, api_key)
        backend.open()
        try:
            yield backend
        finally:
            backend.close()
        return
    from cli.local import LocalBackend

    with asyncio.Runner() as runner:
        backend = LocalBackend(runner)
        try:
            backend.open()
            yield backend
        finally:
            backend.close()


class Driver:
    """Runs a conversation to its end, asking the person whatever waits for an answer."""

    def __init__(self, args: argparse.Namespace, backend: Backend) -> None:
        self.args = args
        self.backend = backend
        self.out, self.err = consoles()
        self.as_json: bool = bool(getattr(args, "json", False))
        self.view = LiveView(self.out, quiet=self.as_json, local=backend.local)
        self.asker = Asker(
            self.err,
            yes=bool(getattr(args, "yes", False)),
            interactive=not getattr(args, "no_input", False),
            local=backend.local,
        )
        self.cid: str | None = None

    def drive(self, cid: str, payload: Any) -> int:
        self.cid = cid
        try:
            return self._loop(cid, payload)
        except KeyboardInterrupt:
            if self.backend.local:
                say("\nStopped. The conversation is saved; continue it with:")
            else:
                say("\nStopped following. The conversation goes on at the server; follow it with:")
            say("  " + self.backend.resume_hint(cid))
            return INTERRUPTED

    def _loop(self, cid: str, payload: Any) -> int:
        for _ in range(1000):  # each turn answers at least one question; a bound, not a limit
            with self.view.running():
                if payload is not _SKIP:
                    self.backend.advance(
                        cid,
                        payload,
                        self.view.on_message,
                        self.view.sync,
                        # Nobody here to ask: do not wait for the desktop agent either.
                        wait_for_others=self.asker.interactive,
                        on_activity=self.view.on_activity,
                    )
                state, waiting = self.backend.state(cid)
                self.view.sync(state, waiting)
            status = state.get("status")
            if status == "waiting":
                mine = [m for m in waiting if self.asker.answers_here(m)]
                if not mine or not self.asker.can_ask(mine):
                    return self._leave_waiting(state, waiting)
                try:
                    answers = self.asker.answer_all(mine)
                except NoAnswer:
                    return self._leave_waiting(state, waiting)
                payload = self.backend.answer(cid, answers)
                continue
            if status == "running":
                # Stopped mid-step earlier (Ctrl-C, a crash): carry on from the checkpoint.
                if payload is self.backend.continue_payload():
                    raise CLIError(f"conversation {cid} does not advance; see --debug", FAILED)
                payload = self.backend.continue_payload()
                continue
            return self._finish(state)
        raise CLIError(f"conversation {cid} keeps asking; stopped", FAILED)

    def _print_json(self, state: dict[str, Any]) -> None:
        if self.as_json:
            sys.stdout.write(
                json.dumps(self.backend.public(state), ensure_ascii=False, indent=2) + "\n"
            )
            sys.stdout.flush()

    def _finish(self, state: dict[str, Any]) -> int:
        self.view.finish()
        self._print_json(state)
        error = self.view.model.error
        if error is not None:
            # Ended by an error of the whole conversation (no LLM, ...): its message, once.
            say(f"cpa-planner: error: {error.get('message')}")
        return OK if state.get("status") == "done" else FAILED

    def _leave_waiting(self, state: dict[str, Any], waiting: list[LamDict]) -> int:
        self._print_json(state)
        cid = self.cid or ""
        inboxes: dict[str, str] = {}  # receiver -> where it finds what waits for it
        for message in waiting:
            content = message.get("content") or {}
            if performative_of(message) is Performative.PROPOSE:
                say("Waiting for the plan's approval (--yes approves).")
                continue
            todo = content.get("todo") or {}
            who = who_answers(message, local=self.backend.local)
            say(f"Waiting for {who} to do {todo.get('id')}: {todo.get('title')}")
            receiver = str(message.get("receiver", ""))
            inbox = (
                None if self.asker.answers_here(message) else self.backend.inbox_url(cid, receiver)
            )
            if inbox is not None:
                inboxes[receiver] = inbox
        reason = "" if self.asker.interactive else " (no terminal here to ask at)"
        if inboxes:
            say(f"The conversation is saved and waits{reason}.")
            for receiver, inbox in inboxes.items():
                say(f"{receiver} finds it in its inbox and answers it with POST /v1/lam:")
                say(f"  GET {inbox}")
            say("Follow it with:")
        else:
            say(f"The conversation is saved and waits{reason}. Answer it with:")
        say("  " + self.backend.resume_hint(cid))
        return WAITING


def run(args: argparse.Namespace) -> int:
    request = " ".join(args.request).strip()
    if not request:
        raise CLIError('the request is empty: cpa-planner run "what to do"', USAGE)
    with backend_for(args) as backend:
        driver = Driver(args, backend)
        cid, payload = backend.start(request)
        driver.view.begin(cid, request)
        return driver.drive(cid, payload)


def resume(args: argparse.Namespace) -> int:
    with backend_for(args) as backend:
        driver = Driver(args, backend)
        state, _ = backend.state(args.conversation_id)
        driver.view.begin(args.conversation_id)
        payload = backend.continue_payload() if state.get("status") == "running" else _SKIP
        if not backend.local and state.get("status") in ("running", "waiting"):
            payload = None  # follow the stream (the desktop agent may answer meanwhile)
        return driver.drive(args.conversation_id, payload)


def show(args: argparse.Namespace) -> int:
    with backend_for(args) as backend:
        state, waiting = backend.state(args.conversation_id)
        if args.json:
            sys.stdout.write(json.dumps(backend.public(state), ensure_ascii=False, indent=2) + "\n")
            return OK
        out, _ = consoles()
        out.print(render_show(state, waiting, local=backend.local))
        return OK
