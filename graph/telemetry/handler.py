"""One LangChain callback handler turns a graph run into metrics, spans and log lines.

LangGraph reports every run through LangChain's callbacks, and that is all this needs:

    the graph            on_chain_start/end, no parent; its metadata has what
                         `graph.telemetry.runs.run_config` put there (conversation, tenant)
    a node               on_chain_start/end named like `metadata["langgraph_node"]`, tagged
                         `graph:step:N`; its input is the state, its output the update;
                         `GraphInterrupt` as the error of a node that waits
    a ToDo               the functional-API task named `contract.TODO_TASK` inside a node:
                         input {"todo_id", ...}, output {"lam": the messages it sent, ...}
    an LLM call          the run `graph.llm.ChatModels` names `<role> model` (metadata
                         `cpa_role`); the chat model's on_llm_end inside it has token usage

What happened is read from the LAM messages each step adds (`lam.log.LamLog`, one per
turn, from its request on): an intent decided, a route taken, a plan sent back for repair, a
re-plan, an answer to a proposal, a ToDo done or failed, the turn's answer. No node is
recognised by its name (node names only label the per-node duration and spans); the one
state channel read is the typed `intent` (`graph.state.IntentFound`), for the decisions that
log nothing (compound requests, none decided).

From these: the Prometheus metrics of `graph.telemetry.metrics`; when a tracer provider is
given, a span per run, node, ToDo and LLM call under the turn's trace
(`graph.telemetry.tracing`); a log line per ToDo and per finished turn. Nothing in the nodes
calls this module, except `trace_metadata()` where a message that waits for someone is made.

The handler is made of parts by concept: the graph run, its nodes and the turn (here), the
ToDos (`graph.telemetry.todo_runs`), the LLM calls (`graph.telemetry.llm_calls`), on the
runs seen and their spans (`graph.telemetry.callbacks`).

The handler runs inline (`run_inline`): every callback is a few dictionary operations on the
event loop's thread, no executor hop. Whatever it fails at, LangChain logs as a warning and
the run goes on (`raise_error` is False).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langgraph.errors import GraphBubbleUp
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)

from graph.telemetry import metrics
from graph.telemetry.callbacks import ROLE_KEY, TURN_KEY, StepRun, TurnRun, epoch_seconds
from graph.telemetry.contract import TODO_TASK, NotRunYet
from graph.telemetry.llm_calls import LLMCallbacks
from graph.telemetry.logs import FIELDS
from graph.telemetry.todo_runs import TodoCallbacks
from graph.telemetry.tracing import forced_ids, turn_context, turn_ids
from lam import LAMMessage, Performative
from lam.log import Entry, LamLog, Meaning, Turn

__all__ = ["ROLE_KEY", "TURN_KEY", "TelemetryHandler", "epoch_seconds"]

logger = logging.getLogger("cpa_planner.turn")

_IGNORED_TAG_PREFIX = "graph:step:"


class TelemetryHandler(TodoCallbacks, LLMCallbacks):
    """Metrics (if `metrics`), spans (if `tracer_provider`), log lines, for every run."""

    # Chains: the graph, its nodes, ToDos, structured LLM calls -----------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = metadata or {}
        name = kwargs.get("name") or ""
        if parent_run_id is None:
            if TURN_KEY in metadata:
                self._start_turn(run_id, metadata, inputs)
            return
        root = self._root_of(parent_run_id)
        if ROLE_KEY in metadata:
            self._start_llm(run_id, parent_run_id, root, metadata, name)
            return
        if root is None:
            return
        turn = self._turns[root]
        if name and name == metadata.get("langgraph_node") and _is_step(tags):
            self._start_node(run_id, turn, root, name, inputs)
        elif name == TODO_TASK and isinstance(inputs, dict) and "todo_id" in inputs:
            self._start_todo(run_id, parent_run_id, turn, root, inputs)
        elif turn.span is not None:
            # Edges, the tasks' helpers: no span, but their children nest under the parent.
            self._add(run_id, StepRun("other", root, span=self._parent_span(parent_run_id)))

    def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id in self._turns:
            self._end_turn(run_id, None)
            return
        step = self._steps.pop(run_id, None)
        if step is None:
            return
        if step.kind == "node":
            self._end_node(step, outputs)
        elif step.kind == "todo":
            self._end_todo(step, outputs)
        elif step.kind == "llm":
            self._end_llm(step, None)
        elif step.own_span and step.span is not None:
            step.span.end()

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if run_id in self._turns:
            self._end_turn(run_id, error)
            return
        step = self._steps.pop(run_id, None)
        if step is None:
            return
        if step.kind == "llm":
            self._end_llm(step, error)
            return
        if step.kind == "node" and self.metrics_on:
            metrics.child(metrics.NODE_DURATION, step.name).observe(
                time.perf_counter() - step.started
            )
        if step.span is None or not step.own_span:
            return
        if isinstance(error, GraphBubbleUp):
            step.span.set_attribute("cpa.outcome", "waiting")  # an interrupt: it asks
        elif isinstance(error, NotRunYet):
            step.span.set_attribute("cpa.outcome", "blocked")  # a dependency waits
        else:
            step.span.set_attribute("cpa.outcome", "error")
            step.span.record_exception(error)
            step.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}"))
        step.span.end()

    # The graph run ------------------------------------------------------------------------

    def _start_turn(self, run_id: UUID, metadata: Mapping[str, Any], inputs: Any) -> None:
        turn = TurnRun(
            started_ns=time.time_ns(),
            thread=str(metadata.get("thread_id") or metadata.get("conversation_id") or ""),
            conversation_id=str(metadata.get("conversation_id") or ""),
            tenant=metadata.get("tenant"),
            kind=str(metadata.get(TURN_KEY)),
        )
        self._turns[run_id] = turn
        opened = _current_turn(inputs.get("lam")) if isinstance(inputs, dict) else None
        if opened is not None:
            fields: dict[str, Any] = {"turn": turn.kind, "request_id": opened.request.id}
            if self.log_request_text:
                fields["text"] = opened.text
            logger.info("turn started", extra={FIELDS: fields})

    def _ensure_turn_span(self, turn: TurnRun, state: Any) -> None:
        """The run's span, once the turn is known: the first node's state names its request."""
        if turn.log is None and isinstance(state, dict) and isinstance(state.get("lam"), list):
            turn.log = LamLog.of_current_turn(state["lam"])
            current = turn.log.current
            if current is not None:
                turn.request_id = current.request.id
                turn.request_at = current.request.timestamp.timestamp()
                turn.traced = self.traced(turn.thread, turn.request_id)
                # A later run of the turn: what it decided is in the log already.
                turn.intent = current.intent.intent if current.intent else None
                turn.route = current.route.target if current.route else None
        if self.tracer is None or turn.span is not None or not turn.traced:
            return
        parent = (
            NonRecordingSpan(turn_context(turn.thread, turn.request_id))
            if turn.request_id
            else None
        )
        turn.span = self.tracer.start_span(
            f"run {turn.kind}",
            context=set_span_in_context(parent) if parent else None,
            kind=SpanKind.INTERNAL,
            start_time=turn.started_ns,
            attributes=self._turn_attributes(turn),
        )

    def traced(self, thread: str, request_id: str | None) -> bool:
        """Whether the turn of this request is traced (OTEL_TRACES_SAMPLER)."""
        if self.tracer is None:
            return False
        if self.sampler is None or request_id is None:
            return True
        trace_id = turn_ids(thread, request_id)[0]
        decision = self.sampler.should_sample(None, trace_id, "turn").decision
        return decision is Decision.RECORD_AND_SAMPLE

    def _turn_attributes(self, turn: TurnRun) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "cpa.conversation_id": turn.conversation_id,
            "cpa.tenant": turn.tenant or "",
            "cpa.turn": turn.kind,
        }
        if turn.request_id:
            attributes["cpa.request_id"] = turn.request_id
        return attributes

    def _end_turn(self, run_id: UUID, error: BaseException | None) -> None:
        turn = self._turns.pop(run_id)
        for member in turn.members:
            leftover = self._steps.pop(member, None)
            if leftover is not None and leftover.own_span and leftover.span is not None:
                leftover.span.end()  # a run cancelled under it
        if self.tracer is None:
            return
        self._ensure_turn_span(turn, None)
        span = turn.span
        if span is None:
            return
        if turn.intent:
            span.set_attribute("cpa.intent", turn.intent)
        if turn.route:
            span.set_attribute("cpa.route", turn.route)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()
        if turn.outcome is not None:
            self._record_turn_span(
                turn.thread,
                turn.conversation_id,
                turn.tenant,
                turn.outcome,
                turn.intent,
                turn.route,
                turn.request_id,
                turn.request_at,
            )

    # Nodes -------------------------------------------------------------------------------

    def _start_node(self, run_id: UUID, turn: TurnRun, root: UUID, name: str, state: Any) -> None:
        self._ensure_turn_span(turn, state)
        step = StepRun("node", root, name=name)
        step.span = self._start_span(
            name,
            turn.span,
            {
                "cpa.node": name,
                "cpa.conversation_id": turn.conversation_id,
                "cpa.tenant": turn.tenant or "",
            },
            SpanKind.INTERNAL,
        )
        step.own_span = step.span is not None
        self._add(run_id, step)

    def _end_node(self, step: StepRun, update: Any) -> None:
        turn = self._turns.get(step.root) if step.root else None
        update = update if isinstance(update, dict) else {}
        if self.metrics_on:
            metrics.child(metrics.NODE_DURATION, step.name).observe(
                time.perf_counter() - step.started
            )
        if isinstance(found := update.get("intent"), dict):
            self._intent_decided(turn, found, step.span)
        if turn is not None:
            for entry in turn.read(update.get("lam")):
                self._logged(turn, entry, step.span)
        if step.span is not None:
            step.span.end()

    def _intent_decided(
        self, turn: TurnRun | None, found: Mapping[str, Any], span: Span | None
    ) -> None:
        """A step decided the intent (`IntentFound`: the tiers that log nothing included)."""
        intent = found.get("intent") or metrics.NO_INTENT
        if turn is not None:
            turn.intent = found.get("intent")
        if self.metrics_on:
            tier = found.get("source") or metrics.NO_INTENT
            metrics.child(metrics.INTENT_DECISIONS, tier, intent).inc()
        if span is not None:
            span.set_attribute("cpa.intent", str(intent))
            span.set_attribute("cpa.intent_tier", str(found.get("source")))

    def _logged(self, turn: TurnRun, entry: Entry, span: Span | None) -> None:
        """What one message a step added tells: a route, a repair, an answer, the end."""
        match entry.meaning:
            case Meaning.ROUTE if entry.turn is not None and entry.turn.route is not None:
                turn.route = entry.turn.route.target
                if span is not None:
                    span.set_attribute("cpa.route", turn.route)
            case Meaning.PLAN_SENT_BACK:
                if self.metrics_on:
                    metrics.PLAN_REPAIRS.inc()
            case Meaning.REPLAN if entry.turn is not None:
                if self.metrics_on and not _repairs(entry.turn, entry.message):
                    metrics.REPLANS.inc()
            case Meaning.APPROVED | Meaning.REFUSED:
                asked = entry.turn.message(entry.message.in_reply_to) if entry.turn else None
                if asked is not None and self.metrics_on:
                    metrics.child(metrics.INTERRUPT_WAIT, "approval").observe(
                        max(0.0, time.time() - asked.timestamp.timestamp())
                    )
                if span is not None:
                    span.set_attribute("cpa.outcome", entry.performative.value)
            case Meaning.ANSWER if entry.turn is not None and entry.turn.outcome is not None:
                self._turn_over(turn, entry.turn.outcome, span)

    def _turn_over(self, turn: TurnRun, outcome: str, span: Span | None) -> None:
        """The turn has its answer (its span is recorded when the run ends)."""
        current = turn.log.current if turn.log is not None else None
        if current is not None and current.intent is not None:
            turn.intent = current.intent.intent
        turn.outcome = outcome
        self.count_turn(
            turn.thread,
            turn.tenant,
            outcome,
            turn.intent,
            turn.route,
            turn.request_id,
            turn.request_at,
        )
        if span is not None:
            span.set_attribute("cpa.outcome", outcome)

    def turn_ended(
        self,
        thread: str,
        conversation_id: str,
        tenant: str | None,
        outcome: str,
        *,
        intent: str | None,
        request_id: str | None,
        request_at: float | None,
    ) -> None:
        """A turn ended outside a run (abandoned: `expired`): count it, record its span."""
        self.count_turn(thread, tenant, outcome, intent, None, request_id, request_at)
        self._record_turn_span(
            thread, conversation_id, tenant, outcome, intent, None, request_id, request_at
        )

    def count_turn(
        self,
        thread: str,
        tenant: str | None,
        outcome: str,
        intent: str | None,
        route: str | None,
        request_id: str | None,
        request_at: float | None,
    ) -> None:
        """Metrics and the log line of a turn that ended."""
        duration = max(0.0, time.time() - request_at) if request_at is not None else None
        if self.metrics_on:
            labels = (intent or metrics.NO_INTENT, outcome)
            metrics.child(metrics.CONVERSATIONS, self.tenant_label(tenant), *labels).inc()
            if duration is not None:
                metrics.child(metrics.CONVERSATION_DURATION, *labels).observe(duration)
        fields: dict[str, Any] = {"outcome": outcome, "intent": intent, "route": route}
        if duration is not None:
            fields["duration_s"] = round(duration, 6)
        if request_id is not None:
            fields["trace_id"] = f"{turn_ids(thread, request_id)[0]:032x}"
        logger.info(f"turn ended: {outcome}", extra={FIELDS: fields})

    def _record_turn_span(
        self,
        thread: str,
        conversation_id: str,
        tenant: str | None,
        outcome: str,
        intent: str | None,
        route: str | None,
        request_id: str | None,
        request_at: float | None,
    ) -> None:
        """The turn's own span, from its request to now, with its derived ids: the parent
        of all its runs, recorded once, when the turn is over."""
        if self.tracer is None or request_id is None or request_at is None:
            return
        if not self.traced(thread, request_id):
            return
        trace_id, span_id = turn_ids(thread, request_id)
        with forced_ids(trace_id, span_id):
            span = self.tracer.start_span(
                "turn",
                context=Context(),  # no parent: the turn is the trace's root
                kind=SpanKind.SERVER,
                start_time=int(request_at * 1e9),
                attributes={
                    "cpa.conversation_id": conversation_id,
                    "cpa.tenant": tenant or "",
                    "cpa.request_id": request_id,
                    "cpa.intent": intent or "",
                    "cpa.route": route or "",
                    "cpa.outcome": outcome,
                },
            )
        span.end()


def _current_turn(log: Any) -> Turn | None:
    """The current turn of a log in a run's input (None if there is none)."""
    return LamLog.of_current_turn(log).current if isinstance(log, list) else None


def _repairs(turn: Turn, proposal: LAMMessage) -> bool:
    """Whether a proposal after ToDos ran repairs a plan the planner took back (`check`'s
    refusal, or a model's answer that was no plan, since the previous proposal): a repair,
    counted as one, not a re-plan. (A step of a streamed plan runs before its plan is
    checked; a re-plan's proposal that `check` refuses is repaired by the planner too.)"""
    for message in reversed(turn.messages):
        if message.id == proposal.id:
            continue
        if message.performative is Performative.PROPOSE:
            return False
        if (
            message.performative is Performative.FAILURE
            and message.sender == message.receiver
            and message.content.get("todo_id") is None
        ):
            return True
    return False


def _is_step(tags: Sequence[str] | None) -> bool:
    return any(t.startswith(_IGNORED_TAG_PREFIX) for t in tags or ())
