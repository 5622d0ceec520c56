"""The telemetry of a ToDo: the functional-API task named `contract.TODO_TASK` in a node.

Its span (under its node's), its count and duration per executor and outcome, the time it
waited for an answer, a log line. How it went is read from the LAM messages it returns
(its `assign`, then `done` or `failure`; none: skipped), apart from its turn's log
(`read_apart`).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

from opentelemetry.trace import SpanKind, Status, StatusCode

from graph.telemetry import metrics
from graph.telemetry.callbacks import HandlerBase, StepRun, TurnRun
from graph.telemetry.logs import FIELDS
from lam.log import Entry, LamLog, Meaning

todo_logger = logging.getLogger("cpa_planner.todo")
_TODO_STATUS = {Meaning.TODO_DONE: "done", Meaning.TODO_FAILED: "failed"}


class TodoCallbacks(HandlerBase):
    """The ToDo part of `TelemetryHandler`."""

    def _start_todo(
        self, run_id: UUID, parent_run_id: UUID, turn: TurnRun, root: UUID, inputs: dict[str, Any]
    ) -> None:
        todo_id = str(inputs["todo_id"])
        # Its executor, as the plan proposed in the log has it.
        current = turn.log.current if turn.log is not None else None
        planned = current.todos.get(todo_id) if current is not None else None
        executor = planned.executor if planned is not None else "unknown"
        step = StepRun("todo", root, executor=executor, todo_id=todo_id)
        step.span = self._start_span(
            f"todo {todo_id}",
            self._parent_span(parent_run_id),
            {
                "cpa.conversation_id": turn.conversation_id,
                "cpa.tenant": turn.tenant or "",
                "cpa.todo.id": todo_id,
                "cpa.todo.executor": step.executor,
            },
            SpanKind.INTERNAL,
        )
        step.own_span = step.span is not None
        self._add(run_id, step)

    def _end_todo(self, step: StepRun, outcome: Any) -> None:
        outcome = outcome if isinstance(outcome, dict) else {}
        turn = self._turns.get(step.root) if step.root else None
        entries = read_apart(turn, outcome.get("lam"))
        # The messages it sent say how it went: its `assign` (possibly sent in an earlier
        # run: it waited), then `done` or `failure`; none at all: it was skipped.
        assign = next((e.message for e in entries if e.meaning is Meaning.ASSIGNED), None)
        if assign is not None:
            # What it was sent as; a step started while its plan was written has no plan
            # in the log yet when it starts.
            step.executor = assign.todo().executor
            if step.span is not None:
                step.span.set_attribute("cpa.todo.executor", step.executor)
        reply = next(
            (e for e in entries if e.meaning in (Meaning.TODO_DONE, Meaning.TODO_FAILED)), None
        )
        status = "skipped" if reply is None else _TODO_STATUS[reply.meaning]
        assigned_at = assign.timestamp.timestamp() if assign is not None else None
        now = time.time()
        duration = max(0.0, now - assigned_at) if assigned_at is not None else None
        # An `assign` older than this pass was sent in an earlier run: the ToDo waited.
        waited = assigned_at is not None and assigned_at < step.started_wall
        if self.metrics_on:
            metrics.child(metrics.TODOS, step.executor, status).inc()
            if duration is not None:
                metrics.child(metrics.TODO_DURATION, step.executor).observe(duration)
            if waited and duration is not None:
                metrics.child(metrics.INTERRUPT_WAIT, step.executor).observe(duration)
        fields: dict[str, Any] = {"todo_id": step.todo_id, "executor": step.executor}
        if duration is not None:
            fields["duration_s"] = round(duration, 6)
        if outcome.get("error"):
            fields["error"] = str(outcome["error"])[:500]
        todo_logger.info(f"todo {step.todo_id} {status}", extra={FIELDS: fields})
        if step.span is not None:
            step.span.set_attribute("cpa.outcome", status)
            if status == "failed":
                step.span.set_status(Status(StatusCode.ERROR, str(outcome.get("error"))[:200]))
            step.span.end()


def read_apart(turn: TurnRun | None, messages: Any) -> list[Entry]:
    """What a ToDo task's messages meant, read apart from its turn's log.

    They join the turn's log with the update of the node that ran the task, in log order. A
    step started while its plan was written (`nodes.early_start`) ends before the plan's
    `propose` is in the log, and is logged after it: read into the log at its end, it would
    make that proposal a re-plan (`cpa_replans_total` counted one too many)."""
    current = turn.log.current if turn is not None and turn.log is not None else None
    if current is None or not isinstance(messages, list):
        return []
    return LamLog([current.request]).add_all(messages)
