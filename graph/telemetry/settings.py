"""Settings of metrics, traces and logs (`TelemetrySettings`), read from the environment.

    CPA_METRICS           collect Prometheus metrics and serve `GET /metrics` (default true)
    CPA_METRICS_TOKEN     when set, `/metrics` wants `Authorization: Bearer <token>`; unset,
                          it is open like `/healthz` (still loopback-only without API keys)
    CPA_LOG_FORMAT        `text` (readable, the default) or `json` (one object a line)
    CPA_LOG_LEVEL         the root level of the server's log (default `info`)
    CPA_LOG_REQUEST_TEXT  put the request's text into the turn's log lines (default false:
                          what people ask may be private)

Traces follow OpenTelemetry's own variables: exported over OTLP (HTTP/protobuf) when
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set and
`OTEL_SDK_DISABLED` is not true; `OTEL_SERVICE_NAME` names the service (default
`cpa-planner`). Without an endpoint no span is made and nothing is sent anywhere.
`OTEL_TRACES_SAMPLER` (`always_on`, the default; `always_off`; `traceidratio` or
`parentbased_traceidratio` with the ratio in `OTEL_TRACES_SAMPLER_ARG`, default 1.0) says
which turns are traced: the decision is made on the turn's trace id, which every run of the
turn derives alike, so a turn is traced whole or not at all.
LangSmith has its own variables (`LANGSMITH_TRACING`, `LANGSMITH_API_KEY`, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from graph.config import ConfigError

LogFormat = Literal["text", "json"]
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LEVELS = ("debug", "info", "warning", "error", "critical")
# OTEL_TRACES_SAMPLER values and the ratio they mean (None: OTEL_TRACES_SAMPLER_ARG's).
# A turn's trace has no parent of its own, so the parent-based ones act as their root's.
_SAMPLERS: dict[str, float | None] = {
    "always_on": 1.0,
    "parentbased_always_on": 1.0,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
    "traceidratio": None,
    "parentbased_traceidratio": None,
}


class TelemetryConfigError(ConfigError):
    """A telemetry setting is unusable; the message names the variable."""


@dataclass(frozen=True)
class TelemetrySettings:
    metrics: bool = True
    metrics_token: str | None = None
    log_format: LogFormat = "text"
    log_level: str = "info"
    log_request_text: bool = False
    # The OTLP endpoint traces go to; None: no tracing at all.
    otlp_endpoint: str | None = None
    service_name: str = "cpa-planner"
    # The share of turns traced (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG).
    trace_ratio: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TelemetrySettings:
        env = os.environ if environ is None else environ
        log_format = env.get("CPA_LOG_FORMAT", "").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise TelemetryConfigError(f"CPA_LOG_FORMAT must be text or json, got {log_format!r}")
        log_level = env.get("CPA_LOG_LEVEL", "").strip().lower() or "info"
        if log_level not in _LEVELS:
            raise TelemetryConfigError(
                f"CPA_LOG_LEVEL must be one of {', '.join(_LEVELS)}, got {log_level!r}"
            )
        endpoint = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
            or None
        )
        if _flag(env, "OTEL_SDK_DISABLED", False):
            endpoint = None
        return cls(
            trace_ratio=_trace_ratio(env),
            metrics=_flag(env, "CPA_METRICS", True),
            metrics_token=env.get("CPA_METRICS_TOKEN", "").strip() or None,
            log_format=log_format,  # type: ignore[arg-type]  # checked above
            log_level=log_level,
            log_request_text=_flag(env, "CPA_LOG_REQUEST_TEXT", False),
            otlp_endpoint=endpoint,
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or "cpa-planner",
        )


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise TelemetryConfigError(f"{name} must be true or false, got {raw!r}")


def _trace_ratio(env: Mapping[str, str]) -> float:
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "always_on"
    if name not in _SAMPLERS:
        raise TelemetryConfigError(
            f"OTEL_TRACES_SAMPLER must be one of {', '.join(_SAMPLERS)}, got {name!r}"
        )
    ratio = _SAMPLERS[name]
    if ratio is not None:
        return ratio
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or "1.0"
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise TelemetryConfigError(
            f"OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1 for {name}, got {raw!r}"
        )
    return ratio
