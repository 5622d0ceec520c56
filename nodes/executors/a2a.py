"""a2a:<name>: hands the ToDo to a configured A2A agent and waits, durably, for its task.

One executor per agent in the `a2a_agents` setting (`CPA_A2A_AGENTS=name=URL,...`), named
`a2a:<name>`; its `assign` goes to the agent id `a2a:<name>`. A ToDo's run:

1. The agent card is read from the configured URL; the URL and every JSON-RPC endpoint the
   card names must be on `a2a_allowlist` (compared as the `http` executor compares: a card
   cannot send us elsewhere). The ToDo goes to the agent as one A2A message (its title and
   description as text; `{"todo", "inputs"}` as data; the message id is the `assign`'s),
   asking for the task back at once (`return_immediately`). This happens in a LangGraph task,
   so a resumed run does not send it again.
2. A task that has already ended is the ToDo's outcome. Otherwise the ToDo waits (an
   interrupt, checkpointed, like `desktop`): the waiting `assign` carries the remote task
   in its metadata (`a2a_agent`, `a2a_task_id`). The server's `RemoteTaskWatcher`
   (`api/a2a/remote_tasks.py`) looks at those tasks and answers the `assign` with `done`
   or `failure` once one ends: whichever server process runs then, after any restart.

Outcome (`outcome`): completed → the artifacts are the output (`[{"name", "text", "data"}]`);
failed, rejected or canceled → the ToDo's failure (`a2a_failed`, ...); input-required or
auth-required → failure too (the planner cannot answer another agent's questions yet).

Approval: what such a step does is unknown, so it needs approval, unless the agent is
listed in `a2a_read_only`.
"""

from __future__ import annotations

from typing import Any

import httpx
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_data_part
from a2a.types import (
    AgentCard,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    Task,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, VERSION_HEADER
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict, ParseDict
from langgraph.func import task
from langgraph.types import interrupt

from graph.allowlist import allowed
from graph.config import Settings
from graph.effects import Effect
from graph.executor_registry import ExecutorCall, ExecutorError
from graph.redaction import redact_url
from graph.tools.catalogue import SourceUnavailableError
from lam import LAMMessage, MessageFactory, ToDo, Tool
from nodes.executors.asking import UnreadableAnswerError, read_answer

PREFIX = "a2a:"
AGENT_KEY = "a2a_agent"
TASK_KEY = "a2a_task_id"
# Remote task states (A2A 1.0 names) and what they mean for the ToDo.
COMPLETED = "TASK_STATE_COMPLETED"
FAILED_STATES = {
    "TASK_STATE_FAILED": "a2a_failed",
    "TASK_STATE_REJECTED": "a2a_rejected",
    "TASK_STATE_CANCELED": "a2a_canceled",
    "TASK_STATE_INPUT_REQUIRED": "a2a_input_required",
    "TASK_STATE_AUTH_REQUIRED": "a2a_auth_required",
}

TaskDict = dict[str, Any]


class AgentUnusableError(Exception):
    """An agent we may not or cannot talk to; `code` says which (the ToDo's failure)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


# Talking to an agent ----------------------------------------------------------------------


class AgentConnection:
    """One agent's client, after its card passed the allow-list; use `async with`."""

    def __init__(self, name: str, url: str, allowlist: tuple[str, ...], timeout_s: float) -> None:
        self.name = name
        self.url = url
        self.allowlist = allowlist
        # A client given an httpx client sends the protocol version only if told to.
        self.http = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            headers={VERSION_HEADER: PROTOCOL_VERSION_CURRENT},
        )
        self.card: AgentCard | None = None

    async def __aenter__(self) -> AgentConnection:
        if not allowed(self.url, self.allowlist):
            await self.http.aclose()
            raise AgentUnusableError(
                "url_not_allowed",
                f"A2A agent {self.name} at {redact_url(self.url)} is not on the allow-list "
                "(CPA_A2A_ALLOWLIST)",
            )
        try:
            card = await A2ACardResolver(self.http, self.url).get_agent_card()
        except (A2AClientError, A2AError, httpx.HTTPError) as exc:
            await self.http.aclose()
            raise AgentUnusableError(
                "a2a_unreachable", f"A2A agent {self.name}: no agent card: {exc}", retryable=True
            ) from None
        usable = [i for i in card.supported_interfaces if allowed(i.url, self.allowlist)]
        if not usable:
            await self.http.aclose()
            named = ", ".join(redact_url(i.url) for i in card.supported_interfaces) or "none"
            raise AgentUnusableError(
                "url_not_allowed",
                f"A2A agent {self.name}: its card names no endpoint on the allow-list "
                f"(CPA_A2A_ALLOWLIST); it names {named}",
            )
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(usable)
        self.card = card
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def _client(self) -> Any:
        assert self.card is not None
        config = ClientConfig(httpx_client=self.http, streaming=False)
        return ClientFactory(config).create(self.card)

    async def send(self, message: Message) -> TaskDict:
        """Send one message; the remote task as JSON (a direct reply: a completed task)."""
        request = SendMessageRequest(
            message=message, configuration=SendMessageConfiguration(return_immediately=True)
        )
        try:
            async for event in self._client().send_message(request):
                if event.HasField("task"):
                    return task_json(event.task)
                if event.HasField("message"):
                    # No task: the agent answered at once; its message is the artifact.
                    return {
                        "id": "",
                        "status": {"state": COMPLETED},
                        "artifacts": [MessageToDict(event.message)],
                    }
        except (A2AClientError, A2AError, httpx.HTTPError) as exc:
            raise AgentUnusableError(
                "a2a_error", f"A2A agent {self.name}: {exc}", retryable=True
            ) from None
        raise AgentUnusableError("a2a_error", f"A2A agent {self.name} answered nothing")

    async def get(self, task_id: str) -> TaskDict:
        try:
            return task_json(await self._client().get_task(GetTaskRequest(id=task_id)))
        except (A2AClientError, A2AError, httpx.HTTPError) as exc:
            raise AgentUnusableError(
                "a2a_error", f"A2A agent {self.name}: task {task_id}: {exc}", retryable=True
            ) from None


def task_json(remote: Task) -> TaskDict:
    return dict(MessageToDict(remote))


def message_for(assign: LAMMessage) -> Message:
    """The A2A message that hands over an `assign`'s ToDo."""
    todo = assign.content["todo"]
    text = "\n".join(t for t in (todo.get("title"), todo.get("description")) if t)
    data = {"todo": todo, "inputs": assign.content.get("inputs", {})}
    if assign.content.get("tool") is not None:  # a skill of its card: which, and with what
        data["tool"] = assign.content["tool"]
    return Message(
        role=Role.ROLE_USER,
        message_id=assign.id,
        parts=[Part(text=text or str(todo.get("id"))), new_data_part(data)],
    )


# What a remote task means for the ToDo -----------------------------------------------------


def state_of(remote: TaskDict) -> str:
    return str((remote.get("status") or {}).get("state", ""))


def ended(remote: TaskDict) -> bool:
    return state_of(remote) == COMPLETED or state_of(remote) in FAILED_STATES


def output_of(remote: TaskDict) -> list[dict[str, Any]]:
    """A completed task's artifacts, each `{"name", "text", "data"}`."""
    artifacts = []
    for raw in remote.get("artifacts") or []:
        parts = [ParseDict(p, Part()) for p in raw.get("parts") or []]
        artifacts.append(
            {
                "name": raw.get("name", ""),
                "text": "\n".join(get_text_parts(parts)),
                "data": get_data_parts(parts),
            }
        )
    return artifacts


def status_text(remote: TaskDict) -> str:
    message = (remote.get("status") or {}).get("message") or {}
    parts = [ParseDict(p, Part()) for p in message.get("parts") or []]
    return "\n".join(get_text_parts(parts)) or state_of(remote)


def answer_for(assign: LAMMessage, remote: TaskDict) -> LAMMessage | None:
    """The `done` or `failure` answering the `assign` for an ended task (None: not ended)."""
    if not ended(remote):
        return None
    todo_id = str(assign.content["todo"]["id"])
    agent = MessageFactory(assign.receiver, assign.conversation_id)
    # One answer per remote outcome: a watcher that sees it twice sends the same message.
    message_id = f"{assign.id}.a2a"
    state = state_of(remote)
    if state == COMPLETED:
        return agent.done(assign, output_of(remote), todo_id=todo_id, message_id=message_id)
    return agent.failure(
        assign.sender,
        FAILED_STATES[state],
        f"{assign.receiver}: {status_text(remote)}",
        todo_id=todo_id,
        in_reply_to=assign.id,
        message_id=message_id,
    )


# The executor ------------------------------------------------------------------------------


@task
async def _hand_over(
    name: str, url: str, assign: dict[str, Any], allowlist: tuple[str, ...], timeout_s: float
) -> dict[str, Any]:
    """Send the ToDo once (a task: a resumed run gets this result back, sends nothing)."""
    try:
        async with AgentConnection(name, url, allowlist, timeout_s) as agent:
            return {"task": await agent.send(message_for(LAMMessage.from_dict(assign)))}
    except AgentUnusableError as exc:
        return {"error": {"code": exc.code, "message": exc.message, "retryable": exc.retryable}}


class A2AExecutor:
    """The executor `a2a:<name>` for one configured agent (see the module docstring)."""

    interrupts = True

    def __init__(self, agent: str, url: str, *, read_only: bool = False) -> None:
        self.agent = agent
        self.url = url
        self.name = f"{PREFIX}{agent}"
        self.receiver: str | None = self.name
        self.read_only = read_only
        self.input_schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                "request": {"type": "string", "description": "what to ask the agent, in words"}
            },
            "additionalProperties": True,
        }
        self.returns = "the A2A task's artifacts"
        # The agent card's skills are offered as tools run here (`graph.tools`).
        self.runs_tools = True
        self.description = (
            f"hands the ToDo to the A2A agent {agent!r} and waits for its task; the output "
            "is the task's artifacts"
        )

    def effect_for(self, todo: ToDo) -> Effect:
        return "read" if self.read_only else "change"

    async def skills(self, settings: Settings) -> list[Tool]:
        """The skills on the agent's card, as tools `<agent>.<skill id>` run by this executor."""
        try:
            async with AgentConnection(
                self.agent, self.url, settings.a2a_allowlist, settings.a2a_timeout_s
            ) as connection:
                card = connection.card
        except AgentUnusableError as exc:
            raise SourceUnavailableError(exc.message) from None
        assert card is not None
        tools = []
        for skill in card.skills:
            examples = "; ".join(list(skill.examples)[:3])
            description = skill.description or skill.name
            tools.append(
                Tool(
                    name=f"{self.agent}.{skill.id}",
                    description=f"{description} (e.g. {examples})" if examples else description,
                    input_schema={
                        "type": "object",
                        "properties": {
                            "request": {"type": "string", "description": "what to ask, in words"}
                        },
                        "required": ["request"],
                    },
                    effect="read" if self.read_only else "change",
                    executor=self.name,
                )
            )
        return tools

    async def __call__(self, call: ExecutorCall) -> Any:
        settings = call.settings
        sent = await _hand_over(
            self.agent,
            self.url,
            call.assign.to_dict(),
            settings.a2a_allowlist,
            settings.a2a_timeout_s,
        )
        if "error" in sent:
            error = sent["error"]
            raise ExecutorError(error["code"], error["message"], retryable=error["retryable"])
        remote: TaskDict = sent["task"]
        answer = answer_for(call.assign, remote)
        if answer is not None:  # ended already: no need to wait
            return read_answer(call, answer.to_dict())
        waiting = call.assign.to_dict()
        waiting["metadata"] = {
            **waiting.get("metadata", {}),
            AGENT_KEY: self.agent,
            TASK_KEY: str(remote.get("id", "")),
        }
        while True:
            try:
                return read_answer(call, interrupt(waiting))
            except UnreadableAnswerError:
                continue  # not an answer to this assign: wait again


def a2a_executors(settings: Settings) -> list[A2AExecutor]:
    """One executor per configured agent."""
    read_only = set(settings.a2a_read_only)
    return [
        A2AExecutor(name, url, read_only=name in read_only)
        for name, url in sorted(settings.a2a_agents.items())
    ]
