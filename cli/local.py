"""Running conversations in this process: the graph, its Redis checkpoints, one event loop.

The event loop is an `asyncio.Runner` that lives as long as the command, and the graph runs
only inside `runner.run(...)`; prompts happen between those calls. That is what makes Ctrl-C
at a prompt a plain KeyboardInterrupt (inside `runner.run`, asyncio turns the first Ctrl-C
into a cancellation instead, and a blocking `readline` would swallow it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, TypeVar

from cli.exits import CONFIG, NOT_FOUND, CLIError
from cli.program import program
from cli.view import LamDict
from lam import LAMMessage

_T = TypeVar("_T")


class LocalBackend:
    """Conversations of the graph built from the environment's settings."""

    local = True

    def __init__(self, runner: asyncio.Runner) -> None:
        self.runner = runner
        self._stack = AsyncExitStack()
        self._where = ""
        self.conversations: Any = None
        self.services: Any = None
        self._ran: set[str] = set()  # conversations run here: the history keeps them

    def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run on the command's event loop; an unreachable Redis is one line, exit 3."""
        from graph.storage.errors import RedisUnavailableError

        try:
            return self.runner.run(work)
        except RedisUnavailableError as exc:
            raise CLIError(str(exc), CONFIG) from exc

    def open(self) -> None:
        self._run(self._open())

    async def _open(self) -> None:
        # Imported here: `intents` commands and --help must not pay for LangGraph.
        from graph.builder import build_graph, make_services
        from graph.config import Settings
        from graph.conversations import Conversations
        from graph.redaction import redact_url
        from graph.storage.connect import open_checkpointer
        from graph.tools.offers import OfferStore

        settings = Settings.from_env()  # ConfigError: one line naming the setting
        services = make_services(settings)  # RegistryError: file:line of the first problem
        saver = await self._stack.enter_async_context(open_checkpointer(settings))
        # The agents' offers of the `local` tenant: a local run plans with them too.
        offers = OfferStore(saver.client, settings.redis_prefix)
        services = replace(services, tools=services.tools.with_offers(offers))
        self.services = services
        self._where = (
            f"Redis at {redact_url(settings.redis_url)} (prefix {settings.redis_prefix})"
            if settings.redis_url
            else f"the embedded store in {settings.data_path}"
        )
        self.conversations = Conversations(build_graph(services, checkpointer=saver), saver)

    def close(self) -> None:
        try:
            if self._ran:
                self._run(self._archive())
        except Exception as exc:  # the conversation is in Redis: the history is the extra
            print(f"cpa-planner: the history was not written: {exc}", file=sys.stderr)
        finally:
            self._run(self._stack.aclose())

    async def _archive(self) -> None:
        """Keep what ran here in the history, as the server's archivers do (tenant `local`)."""
        from cli.history_cmd import archive_local

        views = [(await self.conversations.view(cid)).to_dict() for cid in sorted(self._ran)]
        await archive_local(views)

    def tools(self, request: str | None) -> dict[str, Any]:
        """The catalogue a local run plans with (`GET /v1/tools`'s body)."""
        from graph.tools.narrowing import catalogue_view

        catalogue = self._run(self.services.tools.catalogue())
        return catalogue_view(catalogue, request, self.services.settings.planner_max_tools)

    def start(self, request: str) -> tuple[str, Any]:
        return self.conversations.new_id(), self.conversations.opening(request)

    def advance(
        self,
        cid: str,
        payload: Any,
        on_message: Callable[[LamDict], None],
        on_state: Callable[[dict[str, Any], list[LamDict]], None] | None = None,
        *,
        wait_for_others: bool = True,
        on_activity: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Run (or resume) the graph until it ends or waits, showing each message, and
        what waits on a model and the answer as it is written (`on_activity`).

        (`wait_for_others` has no use here: locally, nobody else answers.)
        """

        async def go() -> None:
            async for message in self.conversations.stream(cid, payload, on_activity):
                on_message(message)

        self._ran.add(cid)

        self._run(go())

    def state(self, cid: str) -> tuple[dict[str, Any], list[LamDict]]:
        from graph.conversations import ConversationNotFoundError

        try:
            view = self._run(self.conversations.view(cid))
        except ConversationNotFoundError:
            raise CLIError(f"no conversation {cid} in {self._where}", NOT_FOUND) from None
        state = view.to_dict()
        state["intent"] = view.intent  # the whole decision: who chose it, which rule
        return state, [w.message for w in view.waiting]

    @staticmethod
    def public(state: dict[str, Any]) -> dict[str, Any]:
        """The object of `--json` (docs/cli.md): `intent` is the intent's name."""
        intent = state.get("intent")
        return {**state, "intent": intent.get("intent") if isinstance(intent, dict) else intent}

    def answer(self, cid: str, answers: list[LAMMessage]) -> Any:
        """One resume command answering every waiting message at once."""
        from langgraph.types import Command

        resume: dict[str, Any] = {}
        for answer in answers:
            command = self._run(self.conversations.answer(cid, answer))
            resume.update(command.resume)
        return Command(resume=resume)

    def continue_payload(self) -> Any:
        """Resume a run that stopped mid-step (Ctrl-C, a crash): continue from the checkpoint."""
        return None

    def resume_hint(self, cid: str) -> str:
        return f"{program()} resume {cid}"

    @staticmethod
    def inbox_url(cid: str, receiver: str) -> str | None:
        """Nothing: locally, whatever waits is answered at the terminal (`resume`)."""
        return None
