"""Noticing that an A2A agent's task has ended while a conversation waits for it.

An `a2a:<name>` ToDo waits with its `assign` in the conversation's inbox, the remote task's
id in the assign's metadata (`nodes/executors/a2a.py`); a conversation that stops waiting
for such an assign is indexed in `srv:remote-waiting` (`Runs.finish`). Every `a2a_poll_s`
seconds the watcher goes through the conversations of that index only, asks each agent
about the tasks handed to it (`tasks/get`), and answers the `assign` of each ended one
with `done` (the artifacts) or `failure` through `Accepting.answer`, as the agent would over the
LAM API. All it knows comes
from the checkpoints, so a server started after a restart (any process sharing the Redis)
carries on where the last one stopped; an answer given twice is the same message (its id is
derived from the assign's) and is applied once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from api.errors import ApiError
from api.replica import Replica
from api.tenants import split_thread
from graph.conversations import ConversationNotFoundError
from lam import LAMMessage, MessageFactory
from nodes.executors.a2a import (
    AGENT_KEY,
    PREFIX,
    TASK_KEY,
    AgentConnection,
    AgentUnusableError,
    answer_for,
)

logger = logging.getLogger("cpa_planner.a2a")
# Waiting conversations looked at per pass (oldest first).
MAX_WAITING = 10_000


class RemoteTaskWatcher:
    """Answers waiting `a2a:<name>` assigns once their remote task ends."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.settings = replica.services.settings
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.settings.a2a_agents:  # nothing to watch without agents
            self._loop = asyncio.create_task(self._run(), name="a2a-remote-tasks")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("looking at A2A agents' tasks failed; trying again later")
            await asyncio.sleep(self.settings.a2a_poll_s)

    async def waiting_assigns(self) -> dict[str, list[tuple[str, LAMMessage]]]:
        """Per agent: (tenant, assign) of every ToDo waiting for one of its tasks."""
        found: dict[str, list[tuple[str, LAMMessage]]] = defaultdict(list)
        # Only the conversations that wait for a remote task (`Runs.finish` indexes them):
        # not every tenant's waiting conversation on every pass.
        raw = await self.replica.redis.zrange(self.replica.keys.remote_waiting, 0, MAX_WAITING - 1)
        for thread in (t.decode() if isinstance(t, bytes) else str(t) for t in raw):
            tenant, cid = split_thread(thread)
            try:
                inbox = await self.replica.views.inbox(tenant, cid, None)
            except ConversationNotFoundError:
                continue
            for message in inbox:
                meta = message.get("metadata") or {}
                if str(message.get("receiver", "")).startswith(PREFIX) and TASK_KEY in meta:
                    found[str(meta[AGENT_KEY])].append((tenant, LAMMessage.from_dict(message)))
        return found

    async def check(self) -> int:
        """One pass; returns how many assigns it answered."""
        answered = 0
        for agent, waiting in (await self.waiting_assigns()).items():
            url = self.settings.a2a_agents.get(agent)
            if url is None:
                for tenant, assign in waiting:
                    answered += await self._answer(tenant, gone(assign))
                continue
            try:
                async with AgentConnection(
                    agent, url, self.settings.a2a_allowlist, self.settings.a2a_timeout_s
                ) as connection:
                    for tenant, assign in waiting:
                        answered += await self._check_one(connection, tenant, assign)
            except AgentUnusableError as exc:
                # Unreachable now (a restart, the network): the ToDos wait on, until their
                # conversation's wait expires (CPA_WAIT_EXPIRY_S).
                logger.warning("A2A agent %s: %s", agent, exc.message)
        return answered

    async def _check_one(self, connection: AgentConnection, tenant: str, assign: LAMMessage) -> int:
        task_id = str((assign.metadata or {})[TASK_KEY])
        try:
            remote = await connection.get(task_id)
        except AgentUnusableError as exc:
            logger.warning("%s", exc.message)
            return 0
        answer = answer_for(assign, remote)
        return await self._answer(tenant, answer) if answer is not None else 0

    async def _answer(self, tenant: str, answer: LAMMessage) -> int:
        try:
            await self.replica.accepting.answer(tenant, answer)
        except ApiError as exc:
            # Answered meanwhile (another process, an earlier pass): nothing to do.
            logger.info("answer %s not taken: %s", answer.id, exc.message)
            return 0
        return 1


def gone(assign: LAMMessage) -> LAMMessage:
    """The failure for a ToDo whose agent is no longer configured."""
    agent = MessageFactory(assign.receiver, assign.conversation_id)
    return agent.failure(
        assign.sender,
        "a2a_agent_gone",
        f"{assign.receiver} is no longer configured (CPA_A2A_AGENTS)",
        todo_id=str(assign.content["todo"]["id"]),
        in_reply_to=assign.id,
        message_id=f"{assign.id}.a2a",
    )
