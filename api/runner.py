"""Conversations run in the background in this process, one run at a time each.

Each conversation (by thread) has a lock, a queue of work and at most one runner task.
Answers that queue up together are handed over together (they resume as one `Command`).
When the queue runs dry the runner calls `finish` once, then ends. This is the part
issue 11 (replicas) replaces by runs claimed in Redis; what a piece of work does is the
hub's (`Hub.run_work`, `Hub.finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lam import LAMMessage

logger = logging.getLogger("cpa_planner.server")

NO_RUN: Any = object()
"""A `continue` with this payload only finishes (the run had ended before a crash)."""


@dataclass
class Work:
    """One piece of queued work: open a turn, apply answers, or carry a run on."""

    kind: Literal["open", "answer", "continue"]
    payload: Any = None
    answers: list[LAMMessage] = field(default_factory=list)


@dataclass
class _Conversation:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[Work] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    holders: int = 0  # callers holding or waiting for the lock (`Runner.hold`)
    finishing: bool = False  # the queue ran dry; the end of the run is being recorded
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Ids of messages answered by an accepted answer that is not applied yet.
    answered: set[str] = field(default_factory=set)


class Runner:
    """The in-process queue and runner task of each conversation."""

    def __init__(
        self,
        run: Callable[[str, Work], Awaitable[None]],
        finish: Callable[[str], Awaitable[None]],
    ) -> None:
        self._run = run
        self._finish = finish
        self._conversations: dict[str, _Conversation] = {}
        self._closing = False

    def _of(self, thread: str) -> _Conversation:
        return self._conversations.setdefault(thread, _Conversation())

    @contextlib.asynccontextmanager
    async def hold(self, thread: str) -> AsyncIterator[None]:
        """The conversation's lock: held while a message for it is judged and queued."""
        conversation = self._of(thread)
        conversation.holders += 1
        try:
            async with conversation.lock:
                yield
        finally:
            conversation.holders -= 1
            self._forget_if_idle(thread, conversation)

    def _forget_if_idle(self, thread: str, conversation: _Conversation) -> None:
        # Nothing runs, queues or waits for it: keep no state (a refused message, a wait
        # that expired) for a conversation that may never be seen again.
        idle = conversation.task is None and not conversation.queue and not conversation.holders
        if idle and self._conversations.get(thread) is conversation:
            del self._conversations[thread]

    def busy(self, thread: str) -> bool:
        conversation = self._conversations.get(thread)
        return (
            conversation is not None
            and conversation.task is not None
            and not conversation.finishing
        )

    def answered(self, thread: str) -> set[str]:
        """Ids of waiting messages with an answer accepted but not applied yet (a copy)."""
        conversation = self._conversations.get(thread)
        return set(conversation.answered) if conversation is not None else set()

    def submit(self, thread: str, work: Work) -> None:
        conversation = self._of(thread)
        conversation.queue.append(work)
        conversation.answered.update(str(a.in_reply_to) for a in work.answers)
        conversation.idle.clear()
        if conversation.task is None and not self._closing:
            conversation.task = asyncio.create_task(
                self._drain(thread, conversation), name=f"conversation:{thread}"
            )

    async def wait_idle(self, thread: str, seconds: float) -> None:
        """Until the conversation's runner has nothing left to do, or `seconds` passed."""
        conversation = self._conversations.get(thread)
        if conversation is None or conversation.task is None or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conversation.idle.wait(), seconds)

    async def close(self) -> None:
        """Stop the runners; what they were doing is resumed at the next start."""
        self._closing = True
        tasks = [c.task for c in self._conversations.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, thread: str, conversation: _Conversation) -> None:
        try:
            while True:
                while conversation.queue:
                    work = conversation.queue.pop(0)
                    if work.kind == "answer":
                        # Answers that queued up together resume together.
                        while conversation.queue and conversation.queue[0].kind == "answer":
                            work.answers.extend(conversation.queue.pop(0).answers)
                    await self._run(thread, work)
                    for answer in work.answers:
                        conversation.answered.discard(str(answer.in_reply_to))
                async with self.hold(thread):  # no answer is judged while the end is recorded
                    if conversation.queue:
                        continue  # arrived just now: run it first
                    # Not busy any more while the end is recorded: the view must not say
                    # `running` for a run that is over (it would never get its TTL).
                    conversation.finishing = True
                    try:
                        await self._finish(thread)
                    finally:
                        conversation.finishing = False
                    break
        except asyncio.CancelledError:
            raise  # shutting down: `srv:running` keeps the conversation for the next start
        except Exception:
            logger.exception("conversation %s: the runner stopped", thread)
        finally:
            conversation.task = None
            conversation.finishing = False
            conversation.idle.set()
            self._forget_if_idle(thread, conversation)
