"""The telemetry handler's bookkeeping: the runs it has seen, and where their spans go.

`TelemetryHandler` (`graph.telemetry.handler`) is one LangChain callback handler made of
parts by concept: the graph run, its nodes and the turn (`handler`), the ToDos
(`todo_runs`), the LLM calls (`llm_calls`). They share what is here: a `TurnRun` per graph
run (what it learnt of its turn), a `StepRun` per run inside it (node, ToDo, LLM call,
anything else), and the lookups from a run to its turn and to the span its children nest
under.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Tracer, set_span_in_context

from graph.telemetry import metrics
from graph.telemetry.tracing import traceparent
from lam.log import Entry, LamLog
from lam.rfc3339 import parse_rfc3339

TURN_KEY = "cpa_turn"
ROLE_KEY = "cpa_role"


def epoch_seconds(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (a LAM message's), or None."""
    if not text:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        return None


@dataclass
class TurnRun:
    """One graph run (a turn runs once or several times) and what it learnt of its turn."""

    started_ns: int
    thread: str
    conversation_id: str
    tenant: str | None
    kind: str
    span: Span | None = None
    traced: bool = True  # the sampler's decision on the turn's trace id (once it is known)
    request_id: str | None = None
    request_at: float | None = None
    intent: str | None = None
    route: str | None = None
    outcome: str | None = None  # set once the turn's answer is logged: the turn is over
    members: list[UUID] = field(default_factory=list)
    log: LamLog | None = None  # the turn's messages, from its request on (first node's state)

    def read(self, messages: Any) -> list[Entry]:
        """What the messages a step added meant (those seen before mean nothing new)."""
        if self.log is None:
            self.log = LamLog()
        return self.log.add_all(messages if isinstance(messages, list) else None)


@dataclass
class StepRun:
    """A run inside a graph run: a node, a ToDo, an LLM call, or anything else."""

    kind: str  # node, todo, llm, llm_inner, other
    root: UUID | None
    started: float = field(default_factory=time.perf_counter)
    started_wall: float = field(default_factory=time.time)
    span: Span | None = None  # own span, or the nearest ancestor's (the parent of children)
    own_span: bool = False
    name: str = ""
    executor: str = ""
    todo_id: str = ""
    role: str = ""


class HandlerBase(BaseCallbackHandler):
    """Metrics (if `metrics`), spans (if `tracer_provider`), log lines, for every run."""

    run_inline = True
    raise_error = False

    def __init__(
        self,
        *,
        tenants: metrics.TenantLabels | None = None,
        metrics_on: bool = True,
        tracer_provider: TracerProvider | None = None,
        trace_ratio: float = 1.0,
        log_request_text: bool = False,
    ) -> None:
        self.tenant_label = tenants or metrics.TenantLabels()
        self.metrics_on = metrics_on
        self.tracer: Tracer | None = (
            tracer_provider.get_tracer("cpa-planner") if tracer_provider else None
        )
        # Which turns are traced, decided on the turn's derived trace id: every run of a
        # turn, in any process, decides alike. A turn not traced costs no span at all.
        self.sampler = TraceIdRatioBased(trace_ratio) if trace_ratio < 1.0 else None
        self.log_request_text = log_request_text
        self._turns: dict[UUID, TurnRun] = {}
        self._steps: dict[UUID, StepRun] = {}

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    # Looking up ---------------------------------------------------------------------------

    def traceparent(self, run_id: UUID | None) -> str | None:
        """The W3C traceparent of the span of this run (or the nearest one above it)."""
        if run_id is None:
            return None
        step = self._steps.get(run_id)
        span = step.span if step is not None else None
        if span is None and (turn := self._turns.get(run_id)) is not None:
            span = turn.span
        return traceparent(span.get_span_context()) if span is not None else None

    def _parent_span(self, parent_run_id: UUID | None) -> Span | None:
        if parent_run_id is None:
            return None
        step = self._steps.get(parent_run_id)
        if step is not None:
            return step.span
        turn = self._turns.get(parent_run_id)
        return turn.span if turn is not None else None

    def _root_of(self, parent_run_id: UUID | None) -> UUID | None:
        if parent_run_id is None:
            return None
        if parent_run_id in self._turns:
            return parent_run_id
        step = self._steps.get(parent_run_id)
        return step.root if step is not None else None

    def _start_span(
        self, name: str, parent: Span | None, attributes: dict[str, Any] | None, kind: SpanKind
    ) -> Span | None:
        if self.tracer is None or parent is None:
            return None
        return self.tracer.start_span(
            name, context=set_span_in_context(parent), kind=kind, attributes=attributes
        )

    def _add(self, run_id: UUID, step: StepRun) -> None:
        self._steps[run_id] = step
        if step.root is not None and (turn := self._turns.get(step.root)) is not None:
            turn.members.append(run_id)
