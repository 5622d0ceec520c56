"""Building messages without repeating sender, conversation and reply bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lam.errors import LAMValidationError
from lam.messages import LAMMessage
from lam.performative import Performative
from lam.plan import Plan, ToDo
from lam.tools import Tool, ToolCall

__all__ = ["MessageFactory"]


class MessageFactory:
    """Makes messages from one sender, in one conversation (``conversation_id`` may be None
    only for the ``request`` that opens a conversation).

    Every helper takes optional ``reply_by``, ``metadata`` and ``message_id`` keyword
    arguments (a generated UUID4 without the last) and returns a validated
    :class:`LAMMessage` (or raises :class:`LAMValidationError`): nothing is patched afterwards.
    """

    def __init__(self, sender: str, conversation_id: str | None = None) -> None:
        self.sender = sender
        self.conversation_id = conversation_id

    def __repr__(self) -> str:
        return f"MessageFactory(sender={self.sender!r}, conversation_id={self.conversation_id!r})"

    def with_conversation(self, conversation_id: str) -> MessageFactory:
        """The same sender, in another conversation (e.g. once the planner opened a thread)."""
        return MessageFactory(self.sender, conversation_id)

    # --- one helper per performative -------------------------------------------------------

    def request(
        self,
        text: str,
        *,
        receiver: str = "planner",
        locale: str | None = None,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        content: dict[str, Any] = {"text": text}
        if locale is not None:
            content["locale"] = locale
        return self._make(
            Performative.REQUEST, receiver, content, reply_by, metadata, message_id=message_id
        )

    def inform(
        self,
        receiver: str,
        topic: str,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
        in_reply_to: str | None = None,
        **fields: Any,
    ) -> LAMMessage:
        return self._make(
            Performative.INFORM,
            receiver,
            {"topic": topic, **fields},
            reply_by,
            metadata,
            in_reply_to=in_reply_to,
            message_id=message_id,
        )

    def inform_intent(
        self,
        receiver: str,
        intent: str,
        confidence: float,
        source: str,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        content = {"topic": "intent", "intent": intent, "confidence": confidence, "source": source}
        return self._make(
            Performative.INFORM, receiver, content, reply_by, metadata, message_id=message_id
        )

    def propose(
        self,
        receiver: str,
        plan: Plan | Mapping[str, Any],
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        content = {"plan": _dump(plan)}
        return self._make(
            Performative.PROPOSE, receiver, content, reply_by, metadata, message_id=message_id
        )

    def agree(
        self,
        to: LAMMessage,
        comment: str | None = None,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        content = {} if comment is None else {"comment": comment}
        return self._answer(
            Performative.AGREE, to, content, reply_by, metadata, message_id=message_id
        )

    def refuse(
        self,
        to: LAMMessage,
        reason: str,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        return self._answer(
            Performative.REFUSE, to, {"reason": reason}, reply_by, metadata, message_id=message_id
        )

    def confirm(
        self,
        receiver: str,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
        **content: Any,
    ) -> LAMMessage:
        return self._make(
            Performative.CONFIRM, receiver, content, reply_by, metadata, message_id=message_id
        )

    def failure(
        self,
        receiver: str,
        code: str,
        message: str,
        *,
        todo_id: str | None = None,
        in_reply_to: str | None = None,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        content: dict[str, Any] = {"error": {"code": code, "message": message}}
        if todo_id is not None:
            content["todo_id"] = todo_id
        return self._make(
            Performative.FAILURE,
            receiver,
            content,
            reply_by,
            metadata,
            in_reply_to=in_reply_to,
            message_id=message_id,
        )

    def done(
        self,
        to: LAMMessage,
        output: Any,
        todo_id: str | None = None,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        """Report a finished ToDo to whoever assigned it (``todo_id``: the assigned one's)."""
        if todo_id is None:
            assigned = to.content.get("todo") if to.performative is Performative.ASSIGN else None
            if not isinstance(assigned, dict) or not isinstance(assigned.get("id"), str):
                raise LAMValidationError.single(
                    "content.todo_id", "todo_id is needed when not answering an 'assign'"
                )
            todo_id = assigned["id"]
        content = {"todo_id": todo_id, "output": output}
        return self._answer(
            Performative.DONE, to, content, reply_by, metadata, message_id=message_id
        )

    def route(
        self,
        receiver: str,
        target: str,
        reason: str,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        content = {"target": target, "reason": reason}
        return self._make(
            Performative.ROUTE, receiver, content, reply_by, metadata, message_id=message_id
        )

    def discover(
        self,
        receiver: str,
        capability: str | None = None,
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        content = {} if capability is None else {"capability": capability}
        return self._make(
            Performative.DISCOVER, receiver, content, reply_by, metadata, message_id=message_id
        )

    def offer(
        self,
        receiver: str,
        executors: Sequence[str],
        intents: Sequence[str],
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
        **extra: Any,
    ) -> LAMMessage:
        content = {"executors": list(executors), "intents": list(intents), **extra}
        return self._make(
            Performative.OFFER, receiver, content, reply_by, metadata, message_id=message_id
        )

    def actions(
        self,
        receiver: str,
        tools: Sequence[Tool | Mapping[str, Any]],
        *,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        """An agent's ``offer`` of its tools (``content.actions``); it replaces its last one."""
        content = {"actions": [_dump(tool) for tool in tools]}
        return self._make(
            Performative.OFFER, receiver, content, reply_by, metadata, message_id=message_id
        )

    def assign(
        self,
        receiver: str,
        todo: ToDo | Mapping[str, Any],
        inputs: Mapping[str, Any],
        *,
        tool: ToolCall | Mapping[str, Any] | None = None,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        """``tool``: the tool to run, with its arguments as the executor gets them."""
        content: dict[str, Any] = {"todo": _dump(todo), "inputs": dict(inputs)}
        if tool is not None:
            content["tool"] = _dump(tool)
        return self._make(
            Performative.ASSIGN, receiver, content, reply_by, metadata, message_id=message_id
        )

    # --- answering -------------------------------------------------------------------------

    def reply(
        self,
        message: LAMMessage,
        performative: Performative | str,
        content: Mapping[str, Any] | None = None,
        *,
        sender: str | None = None,
        conversation_id: str | None = None,
        reply_by: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        """Answer ``message``: sender defaults to its receiver, receiver is its sender, and the
        conversation and ``in_reply_to`` are carried over (a reply to an opening request takes
        ``conversation_id`` or this factory's)."""
        return LAMMessage(
            **_id(message_id),
            performative=performative,
            sender=message.receiver if sender is None else sender,
            receiver=message.sender,
            conversation_id=conversation_id or message.conversation_id or self.conversation_id,
            in_reply_to=message.id,
            reply_by=reply_by,
            content=dict(content or {}),
            metadata=dict(metadata or {}),
        )

    def _answer(
        self,
        performative: Performative,
        to: LAMMessage,
        content: dict[str, Any],
        reply_by: datetime | None,
        metadata: Mapping[str, str] | None,
        *,
        message_id: str | None = None,
    ) -> LAMMessage:
        return LAMMessage(
            **_id(message_id),
            performative=performative,
            sender=self.sender,
            receiver=to.sender,
            conversation_id=to.conversation_id or self.conversation_id,
            in_reply_to=to.id,
            reply_by=reply_by,
            content=content,
            metadata=dict(metadata or {}),
        )

    def _make(
        self,
        performative: Performative,
        receiver: str,
        content: dict[str, Any],
        reply_by: datetime | None,
        metadata: Mapping[str, str] | None,
        *,
        in_reply_to: str | None = None,
        message_id: str | None = None,
    ) -> LAMMessage:
        return LAMMessage(
            **_id(message_id),
            performative=performative,
            sender=self.sender,
            receiver=receiver,
            conversation_id=self.conversation_id,
            in_reply_to=in_reply_to,
            reply_by=reply_by,
            content=content,
            metadata=dict(metadata or {}),
        )


def _id(message_id: str | None) -> dict[str, str]:
    """The `id` argument: a given id, or none (the message then generates one)."""
    return {} if message_id is None else {"id": message_id}


def _dump(model: Plan | ToDo | Tool | ToolCall | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(model, (Plan, ToDo, Tool, ToolCall)):
        return model.model_dump(mode="json")
    return dict(model)
