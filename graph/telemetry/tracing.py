"""OpenTelemetry traces: one trace per conversation turn, however many runs it takes.

A turn (a request and everything until its answer) may run several times: once when it
opens, again after each answer it waited for, in any server process, after a restart. Its
trace id is therefore derived, not stored: a hash of the conversation's thread and the
turn's request id (`turn_ids`). Each run is a span whose parent is the turn's span (also
derived); that span itself is recorded once, by the run that ends the turn, from the
request's timestamp to the answer, so a trace viewer shows the turn's whole latency with
every run, node, ToDo and LLM call under it, and the waits between runs as gaps.

`tracer_provider()` builds the SDK's provider: exporting over OTLP/HTTP where
`TelemetrySettings.otlp_endpoint` says (the exporter reads the standard `OTEL_EXPORTER_OTLP_*`
variables itself), or into the exporter given (tests: the SDK's in-memory exporter). The
provider's id generator is ours (`TurnIdGenerator`), which is what lets the turn's span have
its derived id. The global OpenTelemetry provider is left alone.

W3C `traceparent` (`traceparent()`): `00-<trace id>-<span id>-<flags>`, put on the LAM
messages that wait for someone (`assign`, `propose`) so that the desktop agent can continue
the trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Iterator

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanContext, TraceFlags

from graph.telemetry.settings import TelemetrySettings

_FORCED_IDS: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "cpa_forced_span_ids", default=None
)


class TurnIdGenerator(RandomIdGenerator):
    """Random ids, except inside `forced_ids()`: then the ids given (a turn's span)."""

    def generate_span_id(self) -> int:
        forced = _FORCED_IDS.get()
        return forced[1] if forced else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _FORCED_IDS.get()
        return forced[0] if forced else super().generate_trace_id()


@contextlib.contextmanager
def forced_ids(trace_id: int, span_id: int) -> Iterator[None]:
    """The next span started here gets these ids (our provider's spans only)."""
    token = _FORCED_IDS.set((trace_id, span_id))
    try:
        yield
    finally:
        _FORCED_IDS.reset(token)


def turn_ids(thread: str, request_id: str) -> tuple[int, int]:
    """(trace id, span id) of a turn: the same in every process, for every run of it."""
    digest = hashlib.sha256(f"cpa-turn\0{thread}\0{request_id}".encode()).digest()
    # Zero is an invalid id in W3C Trace Context; a hash is practically never zero.
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def turn_context(thread: str, request_id: str) -> SpanContext:
    """The turn's span as a parent for the spans of its runs."""
    trace_id, span_id = turn_ids(thread, request_id)
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )


def traceparent(context: SpanContext) -> str:
    """The W3C `traceparent` header value of a span."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def tracer_provider(
    settings: TelemetrySettings, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """The provider spans go to, or None when traces go nowhere (no endpoint, no exporter).

    With `exporter` spans are handed over as they end (tests); with the OTLP endpoint they
    are batched and sent in the background.
    """
    processor: SpanProcessor
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter)
    elif settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    else:
        return None
    # Every turn is traced whole: a sampled-out run would leave holes in its turn's trace.
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=Resource.create({"service.name": settings.service_name}),
        id_generator=TurnIdGenerator(),
    )
    provider.add_span_processor(processor)
    return provider
