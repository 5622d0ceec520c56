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
