"""Settings of metrics, traces and logs (`TelemetrySettings`), read from the environment.

    CPA_METRICS           collect Prometheus metrics and serve `GET /metrics` (default true)
    CPA_METRICS_TOKEN     when set, `/metrics` wants `Authorization: Bearer <token>`; unset,
                          it is open like `/healthz` (still loopback-only without API keys)
    CPA_LOG_FORMAT        `text` (readable, the default) or `json` (one object a line)
    CPA_LOG_LEVEL         the root level of the server's log (default `info`)
    CPA_LOG_REQUEST_TEXT  put the request's text into the turn's log lines (default false:
                          what people ask may be private)

Traces follow OpenTelemetry's own variables: exported over OTLP (HTTP/protobuf) when
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (in that order)
and `OTEL_SDK_DISABLED` is not true; `OTEL_SERVICE_NAME` names the service (default
`cpa-planner`). Without an endpoint no span is made and nothing is sent anywhere.
`OTEL_TRACES_SAMPLER` (`always_on`, the default; `always_off`; `traceidratio` or
`parentbased_traceidratio` with the ratio in `OTEL_TRACES_SAMPLER_ARG`, default 1.0) says
which turns are traced: the decision is made on the turn's trace id, which every run of the
turn derives alike, so a turn is traced whole or not at all.
LangSmith has its own variables (`LANGSMITH_TRACING`, `LANGSMITH_API_KEY`, ...).

Read here, by `TelemetrySettings.from_env` (the server at start, `Telemetry()` without
settings); how variables are read: `graph.envsettings`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from graph.envsettings import ConfigError, EnvSettings

LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
# OTEL_TRACES_SAMPLER's values that make sense here. A turn's trace has no parent of its
# own, so the parent-based ones act as their root sampler.
TracesSampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class TelemetryConfigError(ConfigError):
    """A telemetry setting is unusable; the message names the variable."""


class TelemetrySettings(EnvSettings):
    """What is measured, traced and logged, and how."""

    config_error: ClassVar[type[ValueError]] = TelemetryConfigError

    metrics: bool = True
    metrics_token: str | None = Field(None, repr=False)
    log_format: LogFormat = "text"
    log_level: LogLevel = "info"
    log_request_text: bool = False
    # OpenTelemetry's switch for the whole SDK; read before the endpoint, which it clears.
    otel_sdk_disabled: bool = Field(False, validation_alias="OTEL_SDK_DISABLED")
    # The OTLP endpoint traces go to; None: no tracing at all.
    otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    service_name: str = Field("cpa-planner", validation_alias="OTEL_SERVICE_NAME")
    # Which turns are traced: `trace_ratio`.
    traces_sampler: TracesSampler = Field("always_on", validation_alias="OTEL_TRACES_SAMPLER")
    traces_sampler_arg: float = Field(
        1.0, ge=0.0, le=1.0, validation_alias="OTEL_TRACES_SAMPLER_ARG"
    )

    @property
    def trace_ratio(self) -> float:
        """The share of turns traced (1.0: every one, 0.0: none)."""
        if self.traces_sampler.endswith("always_on"):
            return 1.0
        if self.traces_sampler.endswith("always_off"):
            return 0.0
        return self.traces_sampler_arg

    @field_validator("log_format", "log_level", "traces_sampler", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        """`JSON`, `DEBUG`: the names are matched in any case."""
        return value.lower() if isinstance(value, str) else value

    @field_validator("otlp_endpoint")
    @classmethod
    def _not_when_disabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        """No endpoint, so no tracing, while `OTEL_SDK_DISABLED` is true."""
        return None if info.data.get("otel_sdk_disabled") else value
