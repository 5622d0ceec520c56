"""The Prometheus metrics of the planner, and their exposition (text format).

Metric objects live in prometheus-client's default registry, made once per process on
import. With `PROMETHEUS_MULTIPROC_DIR` set before the process starts (several worker
processes behind one port), prometheus-client keeps every value in a file there and
`exposition()` adds up all processes' files; the directory must be empty when the server
starts (the library's rule).

Labels are bounded: `tenant` is a configured tenant or `other` (`TenantLabels`), `intent`
an intent of the registry or `none`, `executor` a registered executor, `role` one of the
three model roles, `route` a route template of the app (never a raw path).

`cpa_conversations_active{state}` is not kept here: the server reads it from Redis at
scrape time (`api.metrics`), so every replica reports the same, whole count.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER_TENANT = "other"
NO_INTENT = "none"

# Seconds. A ToDo or a wait may take a desktop agent or a person hours.
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LONG = (
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
    86400.0,
    7 * 86400.0,
)
_LLM = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_WAIT = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0)

CONVERSATIONS = Counter(
    "cpa_conversations",
    "Conversation turns ended, by outcome: done, failed, refused (the plan), expired "
    "(no answer within CPA_WAIT_EXPIRY_S)",
    ["tenant", "intent", "outcome"],
)
CONVERSATION_DURATION = Histogram(
    "cpa_conversation_duration_seconds",
    "From a turn's request to its answer, waits for people and the desktop agent included",
    ["intent", "outcome"],
    buckets=_LONG,
)
TODOS = Counter(
    "cpa_todos", "ToDos finished, by outcome: done, failed, skipped", ["executor", "outcome"]
)
TODO_DURATION = Histogram(
    "cpa_todo_duration_seconds",
    "From a ToDo's assign to its done or failure (retries and answers waited for included)",
    ["executor"],
    buckets=_LONG,
)
NODE_DURATION = Histogram(
    "cpa_node_duration_seconds",
    "Time in one graph node per run (a node that waits ends its run; the wait is not counted)",
    ["node"],
    buckets=_FAST,
)
LLM_CALLS = Counter(
    "cpa_llm_calls",
    "LLM calls by outcome: ok, error (the server failed), bad_output (not the shape asked)",
    ["role", "outcome"],
)
LLM_DURATION = Histogram(
    "cpa_llm_call_duration_seconds", "One LLM call, parsing included", ["role"], buckets=_LLM
)
LLM_TOKENS = Counter(
    "cpa_llm_tokens",
    "Tokens the provider reported: prompt, completion",
    ["role", "kind"],
)
INTENT_DECISIONS = Counter(
    "cpa_intent_decisions",
    "Intent decisions by tier: rules, classifier, llm, compound; none where nothing decided",
    ["tier", "intent"],
)
PLAN_REPAIRS = Counter("cpa_plan_repairs", "Plans sent back to the planner with their problems")
REPLANS = Counter("cpa_replans", "Replanning rounds after failed ToDos")
INTERRUPT_WAIT = Histogram(
    "cpa_interrupt_wait_seconds",
    "How long a question waited for its answer: approval (a plan), or the executor that asked",
    ["kind"],
    buckets=_WAIT,
)
HTTP_REQUESTS = Counter(
    "cpa_http_requests", "HTTP requests by route template and status", ["route", "status"]
)
HTTP_DURATION = Histogram(
    "cpa_http_request_duration_seconds",
    "HTTP request time until the response ended (an SSE stream: while it was open)",
    ["route"],
    buckets=_FAST,
)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: MetricWrapperBase, *labels: str) -> Any:
    """`metric.labels(*labels)`, kept: the label values are few, and `labels()` is the
    costly part of counting (it formats and locks on every call)."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


class TenantLabels:
    """A tenant's label: itself if configured, else `other` (bounded label values)."""

    def __init__(self, tenants: Iterable[str] = ()) -> None:
        self.tenants = frozenset(tenants)

    def __call__(self, tenant: str | None) -> str:
        return tenant if tenant in self.tenants else OTHER_TENANT


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type.

    `extra` collectors are added for this scrape only (values read at scrape time).
    """
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    extra = list(extra)
    if extra:
        scrape = CollectorRegistry(auto_describe=False)
        for collector in extra:
            scrape.register(collector)
        body += generate_latest(scrape)
    return body, CONTENT_TYPE_LATEST
