"""Asking a person or the desktop agent, and reading the answer to the `assign`."""

from __future__ import annotations

import logging
from typing import Any

from langgraph.types import interrupt

from graph.answer_rules import (
    AnswerMismatchError,
    NotTheReceiverError,
    WrongTodoError,
    check_answer,
)
from graph.executor_registry import Answered, ExecutorCall, ExecutorError
from lam import LAMMessage, LAMValidationError, MessageFactory, Performative

logger = logging.getLogger(__name__)


class UnreadableAnswerError(ValueError):
    """The resume value is no answer to this `assign` (the ToDo did not fail: ask again)."""


def ask(call: ExecutorCall) -> Answered:
    """Wait (interrupt, checkpointed) for the answer to the ToDo's `assign`.

    LangGraph keeps an interrupt's first resume value for good, so an unreadable answer is
    not taken as the ToDo's failure: the same `assign` is asked again, as a new interrupt.
    """
    while True:
        try:
            return read_answer(call, interrupt(call.assign.to_dict()))
        except UnreadableAnswerError as exc:
            logger.warning("answer to %s not understood, asking again: %s", call.todo.id, exc)


def read_answer(call: ExecutorCall, answer: Any) -> Answered:
    """Turn the interrupt's resume value into the ToDo's output, or raise its failure.

    The value is the answering LAM message (`done` or `failure`, `in_reply_to` the
    `assign`); from Studio or a terminal a plain value is taken as the output, and
    `{"error": "..."}` as a failure.
    """
    assign = call.assign
    if isinstance(answer, dict) and "lam_version" in answer:
        try:
            message = LAMMessage.from_dict(answer)
        except LAMValidationError as exc:
            raise UnreadableAnswerError(f"the answer is not a valid LAM message: {exc}") from None
        if message.in_reply_to != assign.id:
            raise UnreadableAnswerError(
                f"the answer replies to {message.in_reply_to}, not to {assign.id}"
            )
        try:
            # The kind, the sender (the assign's receiver) and the ToDo must fit: a resume
            # from Studio or elsewhere is held to the same rules as the HTTP API's.
            check_answer(assign.to_dict(), message)
        except (AnswerMismatchError, NotTheReceiverError, WrongTodoError) as exc:
            raise UnreadableAnswerError(str(exc)) from None
        if message.performative == Performative.DONE:
            return Answered(message.content.get("output"), message)
        error = message.content["error"]
        raise ExecutorError(str(error["code"]), str(error["message"]), reply=message)
    worker = MessageFactory(assign.receiver, call.conversation_id)
    if isinstance(answer, dict) and set(answer) == {"error"}:
        failure = worker.failure(
            assign.sender,
            "failed",
            str(answer["error"]),
            todo_id=call.todo.id,
            in_reply_to=assign.id,
        )
        raise ExecutorError("failed", str(answer["error"]), reply=failure)
    output = (
        answer.get("output") if isinstance(answer, dict) and set(answer) == {"output"} else answer
    )
    return Answered(output, worker.done(assign, output, todo_id=call.todo.id))
