"""Observability: Prometheus metrics, OpenTelemetry traces, LangSmith labels, logs (issue 14).

    settings   TelemetrySettings from the environment (CPA_METRICS, CPA_LOG_FORMAT, OTEL_*)
    metrics    the Prometheus metrics and their exposition (multi-process aware)
    tracing    the tracer provider, a turn's derived trace ids, W3C traceparent
    handler    TelemetryHandler: the LangChain callback that turns runs into all of it
               (its parts: callbacks, the runs seen; todo_runs, ToDos; llm_calls, LLM calls)
    runs       run names, metadata and tags (LangSmith); the LangSmith run around a turn
    logs       text or JSON log lines that carry their conversation's id and tenant

`Telemetry` bundles them for `graph.conversations.Conversations`, which adds its callback to
every run it starts. The server makes one with its tenants (`server.py`); without one,
`Telemetry.default()` (from the environment) is used. `trace_metadata()` is what a node
calls to put the current span's `traceparent` on a message that waits for someone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from langchain_core.runnables import RunnableConfig
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from graph.telemetry import runs
from graph.telemetry.handler import TelemetryHandler, epoch_seconds
from graph.telemetry.metrics import TenantLabels
from graph.telemetry.settings import TelemetrySettings
from graph.telemetry.tracing import tracer_provider

__all__ = ["Telemetry", "TelemetryHandler", "TelemetrySettings", "trace_metadata"]


class Telemetry:
    """What runs of conversations report to: metrics, spans, LangSmith labels, log lines.

    `tenants` are the tenants that get their own metric label (others: `other`);
    `exporter` sends spans there instead of OTLP (tests); `tracer_provider` overrides both.
    With metrics off and no traces no callback is added at all.
    """

    def __init__(
        self,
        settings: TelemetrySettings | None = None,
        *,
        tenants: Iterable[str] = (),
        exporter: SpanExporter | None = None,
        provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings or TelemetrySettings.from_env()
        self.provider = provider or tracer_provider(self.settings, exporter)
        self.handler: TelemetryHandler | None = None
        if self.settings.metrics or self.provider is not None:
            self.handler = TelemetryHandler(
                tenants=TenantLabels(tenants),
                metrics_on=self.settings.metrics,
                tracer_provider=self.provider,
                trace_ratio=self.settings.trace_ratio,
                log_request_text=self.settings.log_request_text,
            )

    @staticmethod
    @functools.cache
    def default() -> Telemetry:
        """From the environment, made once per process (the command line, embedders)."""
        return Telemetry()

    def run_config(self, conversation_id: str, tenant: str | None, kind: str) -> RunnableConfig:
        """What a run of this conversation adds to its config: callback, name, labels."""
        config = runs.run_config(conversation_id, tenant, kind)
        if self.handler is not None:
            config["callbacks"] = [self.handler]
        return config

    def langsmith_turn(self, conversation_id: str, tenant: str | None, kind: str) -> Any:
        return runs.langsmith_turn(conversation_id, tenant, kind)

    def turn_expired(
        self,
        thread: str,
        conversation_id: str,
        tenant: str | None,
        *,
        outcome: str,
        intent: str | None,
        request: dict[str, Any] | None,
    ) -> None:
        """A waiting turn was ended without its answers (`Conversations.abandon`)."""
        if self.handler is None:
            return
        self.handler.turn_ended(
            thread,
            conversation_id,
            tenant,
            outcome,
            intent=intent,
            request_id=str(request["id"]) if request else None,
            request_at=epoch_seconds(request.get("timestamp")) if request else None,
        )

    def shutdown(self) -> None:
        """Send the spans still buffered (at the server's stop)."""
        if self.provider is not None:
            self.provider.shutdown()


def trace_metadata() -> dict[str, str]:
    """`{"traceparent": ...}` of the run this is called in (a node, a task), or {}.

    For a LAM message that waits for someone (`assign`, `propose`): whoever answers can
    continue the trace. Empty when no trace is recorded.
    """
    from langgraph.config import get_config

    try:
        config = get_config()
    except RuntimeError:  # not inside a run
        return {}
    manager = config.get("callbacks")
    for handler in getattr(manager, "handlers", None) or ():
        if isinstance(handler, TelemetryHandler):
            parent = handler.traceparent(getattr(manager, "parent_run_id", None))
            return {"traceparent": parent} if parent else {}
    return {}
