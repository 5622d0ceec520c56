"""Conversations over the compiled graph: start, stream, answer, and look at one.

This is the one layer the HTTP API and the command line stand on. Everything it knows
comes from the checkpointer, so any process can look at or resume any conversation:

- the LAM log in the state;
- the results of ToDos that finished inside an `execute` step that has not ended yet
  (pending task writes: durable, though not yet merged into the state);
- the interrupts: the `propose` or `assign` messages waiting for an answer.

A conversation may have an *owner* (the server's tenant). Its LangGraph thread is then
`<owner>/<id>`: LAM ids cannot hold `/`, so two owners may use the same conversation id, and
neither collides with an unowned conversation (the command line's, Studio's). The LAM
messages carry the id alone, the public one (`configurable["conversation_id"]`).

An answer must fit what it answers (`graph.answer_rules`), or nothing resumes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Durability

from graph import lamlog
from graph.answer_rules import (
    ANSWERS,
    AnswerMismatchError,
    NotTheReceiverError,
    WrongTodoError,
    check_answer,
)
from graph.approval import declared_for
from graph.effects import Effect
from graph.plan_stream import live_plan, newest_written
from graph.state import LamDict, Status
from graph.telemetry import Telemetry
from graph.telemetry.logs import conversation_logging
from graph.tools.sources import DEFAULT_TENANT, TENANT_KEY
from lam import LAMMessage, MessageFactory, Performative, Plan
from lam.log import performative_of

RETURN_CHANNEL = "__return__"
FINAL_NODE = "respond"
INTERRUPT_CHANNEL = "__interrupt__"


class ConversationNotFoundError(LookupError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"no conversation {conversation_id}")
        self.conversation_id = conversation_id


__all__ = [
    "AnswerMismatchError",
    "ConversationNotFoundError",
    "ConversationView",
    "Conversations",
    "NotTheReceiverError",
    "NothingWaitingError",
    "Waiting",
    "WrongTodoError",
    "thread_id",
]


class NothingWaitingError(LookupError):
    """An answer arrived for a message that no longer waits (or never did)."""


def thread_id(conversation_id: str, owner: str | None = None) -> str:
    """The LangGraph thread of a conversation: `<owner>/<id>`, or the id alone."""
    return f"{owner}/{conversation_id}" if owner else conversation_id


@dataclass(frozen=True)
class Waiting:
    """A message waiting for an answer, and the interrupt its answer resumes."""

    interrupt_id: str
    message: LamDict

    @property
    def receiver(self) -> str:
        return str(self.message["receiver"])


@dataclass
class ConversationView:
    conversation_id: str
    status: Status
    intent: dict[str, Any] | None
    plan: dict[str, Any] | None
    result: Any
    messages: list[LamDict]
    waiting: list[Waiting] = field(default_factory=list)
    # What a trusted template declared for the current plan's steps (`graph.approval`).
    declared_effects: dict[str, Effect] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The body of `GET /v1/conversations/{id}` (docs/http.md) and of the CLI's `--json`."""
        return {
            "conversation_id": self.conversation_id,
            "status": self.status,
            "intent": (self.intent or {}).get("intent"),
            "plan": self.plan,
            "result": self.result,
            "messages": self.messages,
        }


def _merge(log: list[LamDict], extra: list[LamDict]) -> list[LamDict]:
    seen = {m["id"] for m in log}
    fresh: dict[str, LamDict] = {}
    for message in extra:
        if message["id"] not in seen:
            fresh.setdefault(message["id"], message)
    return [*log, *sorted(fresh.values(), key=lambda m: m["timestamp"])]


def _plan_dict(plan: Plan | None) -> dict[str, Any] | None:
    """The state's plan in its wire form, as the API and the command line show it."""
    return None if plan is None else plan.model_dump(mode="json")


def _overlay(
    plan: dict[str, Any] | None, outcomes: list[dict[str, Any]], running: set[str]
) -> dict[str, Any] | None:
    """The plan with live ToDo statuses from an `execute` step still under way."""
    if plan is None:
        return None
    by_id = {o["todo_id"]: o for o in outcomes}
    todos = []
    for todo in plan.get("todos", []):
        todo = dict(todo)
        if todo.get("status") == "pending":
            if todo["id"] in by_id:
                outcome = by_id[todo["id"]]
                todo.update(
                    status=outcome["status"], output=outcome["output"], error=outcome["error"]
                )
            elif todo["id"] in running:
                todo["status"] = "running"
        todos.append(todo)
    return {**plan, "todos": todos}


class Conversations:
    """Conversations of one compiled graph (with its checkpointer).

    Every run it starts reports to `telemetry` (metrics, traces, LangSmith labels, log
    lines: `graph.telemetry`); by default the process's, from the environment.
    """

    def __init__(
        self,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        checkpointer: BaseCheckpointSaver[Any],
        telemetry: Telemetry | None = None,
    ) -> None:
        self.graph = graph
        self.checkpointer = checkpointer
        self.telemetry = telemetry or Telemetry.default()

    @staticmethod
    def config(
        conversation_id: str, owner: str | None = None, extra: Mapping[str, Any] | None = None
    ) -> RunnableConfig:
        """The run config; `extra` adds to `configurable` (the server's fencing token).

        `tenant`: whose action catalogue the run plans with (`graph.tools`): the owner's,
        else the one of every unowned conversation (the command line's, Studio's).
        """
        return {
            "configurable": {
                **(extra or {}),
                "thread_id": thread_id(conversation_id, owner),
                "conversation_id": conversation_id,
                TENANT_KEY: owner or DEFAULT_TENANT,
            }
        }

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    # Starting and resuming ------------------------------------------------------------

    @staticmethod
    def opening(request: LAMMessage | str) -> dict[str, Any]:
        """The graph input for a new turn: request text or a LAM `request`."""
        if isinstance(request, str):
            return {"request": request}
        if request.performative != Performative.REQUEST:
            raise ValueError(f"a conversation opens with a request, not {request.performative}")
        return {"lam": [request.to_dict()]}

    async def answer(
        self, conversation_id: str, answer: LAMMessage, *, owner: str | None = None
    ) -> Command[Any]:
        """The resume command for an answer, after checking it answers what waits.

        Raises NothingWaitingError, AnswerMismatchError (wrong kind), NotTheReceiverError,
        WrongTodoError; nothing changes then.
        """
        view = await self.view(conversation_id, owner=owner)
        target = next((w for w in view.waiting if w.message["id"] == answer.in_reply_to), None)
        if target is None:
            raise NothingWaitingError(
                f"nothing in conversation {conversation_id} waits for an answer to "
                f"{answer.in_reply_to}"
            )
        check_answer(target.message, answer)
        return Command(resume={target.interrupt_id: answer.to_dict()})

    async def stream(
        self,
        conversation_id: str,
        payload: Any,
        on_activity: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
        *,
        owner: str | None = None,
        configurable: Mapping[str, Any] | None = None,
        durability: Durability | None = None,
        expire: bool = True,
    ) -> AsyncIterator[LamDict]:
        """Run (or resume) the conversation, yielding each LAM message as it appears.

        `on_activity` gets what is not a LAM message: a step starting and stopping to wait
        on a model (`{"llm": ...}`), the pieces of an answer as the model writes it
        (`{"token": ...}`; see `graph.llm`). They are passing news, never logged. An async
        `on_activity` is awaited before the run goes on (news stays in order).

        `configurable` adds to the run's config (the server passes its lease's fencing
        token, `graph.storage.fencing.FENCE`, which the checkpointer checks on every write).
        `durability` is LangGraph's (default "async"); "sync" stores each step before the
        next starts, so a fenced run that lost its lease stops after the step it is in.
        A turn that ended gets the TTL (`expire`), unless the caller sees to that itself.
        """
        seen: set[str] = set()
        ended = False
        kind = "answer" if isinstance(payload, Command) else "open" if payload else "continue"
        config: RunnableConfig = {
            **self.telemetry.run_config(conversation_id, owner, kind),
            **self.config(conversation_id, owner, configurable),
        }
        async with self.telemetry.langsmith_turn(conversation_id, owner, kind) as traced:
            with conversation_logging(conversation_id, owner):
                async for mode, chunk in self.graph.astream(
                    payload, config, stream_mode=["custom", "updates"], durability=durability
                ):
                    # Every turn ends in `respond`, the last node: its update ends the turn.
                    ended = ended or (mode == "updates" and FINAL_NODE in (chunk or {}))
                    if mode == "custom" and isinstance(chunk, dict) and "lam" not in chunk:
                        news = on_activity(chunk) if on_activity is not None else None
                        if news is not None:
                            await news
                        continue
                    for message in self._messages_in(mode, chunk):
                        if message["id"] not in seen:
                            seen.add(message["id"])
                            yield message
            if traced is not None:  # LangSmith: label the run with what was decided
                view = await self.view(conversation_id, owner=owner)
                route = lamlog.last(view.messages, Performative.ROUTE)
                traced.finish(
                    intent=(view.intent or {}).get("intent"),
                    route=str(route["content"]["target"]) if route else None,
                    status=view.status,
                )
        if ended and expire:
            await self.expire(thread_id(conversation_id, owner))

    async def expire(self, thread: str) -> None:
        """A finished conversation is kept for the configured TTL, then Redis drops it."""
        expire = getattr(self.checkpointer, "expire_conversation", None)
        if expire is not None:  # InMemorySaver (tests) has none
            await expire(thread)

    async def run(
        self, conversation_id: str, payload: Any, *, owner: str | None = None
    ) -> ConversationView:
        async for _ in self.stream(conversation_id, payload, owner=owner):
            pass
        return await self.view(conversation_id, owner=owner)

    async def abandon(
        self,
        conversation_id: str,
        code: str,
        message: str,
        *,
        owner: str | None = None,
        configurable: Mapping[str, Any] | None = None,
    ) -> ConversationView:
        """End a waiting conversation as failed, without the answers it waits for.

        The turn ends as if `respond` had failed it: a `failure` to the requester in the
        log, status `failed`, no interrupt left waiting (the inbox is empty). Raises
        NothingWaitingError if the conversation does not wait (any more).
        """
        view = await self.view(conversation_id, owner=owner)
        if view.status != "waiting":
            raise NothingWaitingError(f"conversation {conversation_id} is {view.status}")
        request = lamlog.last(view.messages, Performative.REQUEST)
        requester = str(request["sender"]) if request else "user"
        failure = MessageFactory(lamlog.PLANNER, conversation_id).failure(
            requester,
            code,
            message,
            message_id=lamlog.stable_id(
                conversation_id, "abandon", request["id"] if request else "", code
            ),
        )
        update = {
            "status": "failed",
            "result": {"error": {"code": code, "message": message}},
            "lam": [failure.to_dict()],
        }
        config = self.config(conversation_id, owner, configurable)
        await self.graph.aupdate_state(config, update, as_node=FINAL_NODE)
        await self.expire(thread_id(conversation_id, owner))
        self.telemetry.turn_expired(
            thread_id(conversation_id, owner),
            conversation_id,
            owner,
            outcome=code if code == "expired" else "failed",
            intent=(view.intent or {}).get("intent"),
            request=request,
        )
        return await self.view(conversation_id, owner=owner)

    @staticmethod
    def _messages_in(mode: str, chunk: Any) -> list[LamDict]:
        if mode == "custom":
            return [chunk["lam"]] if isinstance(chunk, dict) and "lam" in chunk else []
        found: list[LamDict] = []
        for name, update in (chunk or {}).items():
            if name == "__interrupt__":
                found.extend(i.value for i in update if isinstance(i.value, dict))
            elif isinstance(update, dict) and update.get("lam"):
                found.extend(update["lam"])
        return found

    # Looking -----------------------------------------------------------------------------

    async def exists(self, conversation_id: str, *, owner: str | None = None) -> bool:
        config = self.config(conversation_id, owner)
        return await self.checkpointer.aget_tuple(config) is not None

    async def view(self, conversation_id: str, *, owner: str | None = None) -> ConversationView:
        config = self.config(conversation_id, owner)
        snapshot = await self.graph.aget_state(config)
        if not snapshot.values and snapshot.created_at is None:
            raise ConversationNotFoundError(conversation_id)
        values = dict(snapshot.values)
        outcomes: list[dict[str, Any]] = []
        answered: set[str] = set()
        written: dict[str, Any] | None = None
        # Steps run as tasks inside `execute`, and inside `plan` while it streams
        # (`nodes.early_start`): their finished results are durable before the node ends,
        # and so is the plan as written so far (the state has it when `plan` returns).
        if {"execute", "plan"} & set(snapshot.next):
            saved = await self.checkpointer.aget_tuple(config)
            writes = (saved.pending_writes or []) if saved else []
            finished = {task for task, channel, _ in writes if channel == RETURN_CHANNEL}
            written = newest_written(v for _, channel, v in writes if channel == RETURN_CHANNEL)
            for task, channel, value in writes:
                if channel == RETURN_CHANNEL and isinstance(value, dict) and "todo_id" in value:
                    outcomes.append(value)
                elif channel == INTERRUPT_CHANNEL and task in finished:
                    # The ToDo that asked has finished since (answered, then the process
                    # died before `execute` ended): `execute` re-raised its question as the
                    # node's own interrupt, and LangGraph still counts that copy as pending.
                    raised = value if isinstance(value, (list, tuple)) else [value]
                    answered.update(str(i.id) for i in raised)
        waiting = [
            Waiting(i.id, i.value)
            for i in snapshot.interrupts
            if isinstance(i.value, dict)
            and performative_of(i.value) in ANSWERS
            and i.id not in answered
        ]
        extra = [m for o in outcomes for m in o.get("lam", [])]
        extra += [w.message for w in waiting]
        running = {
            w.message["content"]["todo"]["id"]
            for w in waiting
            if performative_of(w.message) is Performative.ASSIGN
        }
        status: Status
        if waiting:
            status = "waiting"
        elif snapshot.tasks:
            # Running while the newest checkpoint has any task, finished or not. `next` leaves
            # out a task whose writes are stored, and the state has them applied already: a
            # run stopped after `respond`'s writes, before the checkpoint after them, shows
            # the answer and `done`, yet a new turn's input would discard those writes.
            status = "running"
        else:
            status = values.get("status") or "running"
        log = list(values.get("lam") or [])
        propose = lamlog.last(log, Performative.PROPOSE)
        plan = _plan_dict(values.get("plan"))
        if written is not None:  # `plan` still streams: its plan so far, steps started
            plan, started = live_plan(written, {o["todo_id"]: o for o in outcomes})
            running |= started
        return ConversationView(
            conversation_id=conversation_id,
            status=status,
            intent=values.get("intent"),
            plan=_overlay(plan, outcomes, running),
            result=values.get("result"),
            messages=_merge(log, extra),
            waiting=waiting,
            declared_effects=(
                declared_for(values.get("plan_effects"), str(propose["id"])) if propose else {}
            ),
        )

    async def inbox(
        self, conversation_id: str, receiver: str | None = None, *, owner: str | None = None
    ) -> list[LamDict]:
        """The waiting `assign`/`propose` messages, for one receiver or all."""
        view = await self.view(conversation_id, owner=owner)
        return [w.message for w in view.waiting if receiver is None or w.receiver == receiver]
