"""Typed configuration: environment first, then LangGraph's run config (`configurable`).

Every setting has one name. In the environment it is `CPA_<NAME>` (upper case), and for a
few a well-known variable too, read when the `CPA_` one is not set (`OPENAI_API_KEY`,
`OPENAI_BASE_URL`, `OLLAMA_HOST`, `REDIS_URL`); in a run config it is the field name, e.g.
`{"configurable": {"approval_policy": "always"}}`. How variables are read (blank is unset,
lists are `a,b,c`, errors name the variable): `graph.envsettings`.

A run config (Studio's assistant settings, anyone who can start a run) may make a run
safer, not less safe: it can raise `approval_policy` and narrow `http_allowlist`, but not
lower or widen them, unless the environment says `CPA_ALLOW_RUN_OVERRIDES=true`. A run config
that points the LLM elsewhere (`llm_base_url`, `ollama_host`, `llm_provider`) does not take
the environment's `llm_api_key` along: it brings its own or none.

Read here: the graph's settings (`Settings.from_env`, by the CLI's local mode, the server and
Studio's graph). The HTTP layer's are `api.settings`, telemetry's `graph.telemetry.settings`,
the command line's own `cli.settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator

from graph.envsettings import ConfigError as ConfigError  # re-exported: callers catch it here
from graph.envsettings import EnvSettings
from graph.storage.url import check_redis_url

Provider = Literal["openai", "ollama", "openai_compatible"]
StructuredOutputMethod = Literal["json_schema", "function_calling", "json_mode"]
ApprovalPolicy = Literal["never", "flagged", "always"]
Role = Literal["router", "planner", "executor"]

_AGENT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Settings a run config may not change at all: they start programs or reach servers.
ENVIRONMENT_ONLY = ("tools_files", "mcp_servers", "mcp_allowlist")
# Approval policies from the least to the most asking.
_POLICY_RANK: dict[str, int] = {"never": 0, "flagged": 1, "always": 2}


# Where the LLM is: a run config that changes one of these does not get the server's key.
LLM_ENDPOINT = ("llm_base_url", "ollama_host", "llm_provider")


class Settings(EnvSettings):
    """Everything a conversation can be configured with."""

    # LLM: which server, which model per role, and how to talk to it.
    llm_provider: Provider | None = None
    llm_base_url: str | None = Field(
        None, validation_alias=AliasChoices("CPA_LLM_BASE_URL", "OPENAI_BASE_URL")
    )
    llm_api_key: str | None = Field(
        None, validation_alias=AliasChoices("CPA_LLM_API_KEY", "OPENAI_API_KEY"), repr=False
    )
    ollama_host: str | None = Field(
        None, validation_alias=AliasChoices("CPA_OLLAMA_HOST", "OLLAMA_HOST")
    )
    llm_model: str | None = None
    router_model: str | None = None
    planner_model: str | None = None
    executor_model: str | None = None
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    # Per role: a router answers in a few tokens, a plan needs more, an executor's text
    # some. The role's own setting, else the `llm_` one for every role, else the default
    # (ROLE_DEFAULTS). With no limit a small model runs on until the timeout.
    llm_timeout_s: float | None = Field(None, gt=0)
    router_timeout_s: float | None = Field(None, gt=0)
    planner_timeout_s: float | None = Field(None, gt=0)
    executor_timeout_s: float | None = Field(None, gt=0)
    llm_max_tokens: int | None = Field(None, gt=0)
    router_max_tokens: int | None = Field(None, gt=0)
    planner_max_tokens: int | None = Field(None, gt=0)
    executor_max_tokens: int | None = Field(None, gt=0)
    # Retries after no connection, a rate limit or a server error; never after a timeout
    # or an answer that does not fit (asking again the same way rarely helps).
    llm_max_retries: int = Field(2, ge=0, le=10)
    # How the token limit is sent: OpenAI's `max_completion_tokens`, or `max_tokens`,
    # which every OpenAI-compatible server knows (the default for them).
    llm_max_tokens_param: Literal["max_completion_tokens", "max_tokens"] | None = None
    # How structured output is asked for: `json_schema` (the default: llama.cpp, OpenAI
    # and Ollama constrain the answer to the schema), `function_calling`, `json_mode`.
    llm_structured_output: StructuredOutputMethod | None = None
    # A template plan's results are listed as they are; true asks the executor model
    # for a summary of them too.
    summarize_template_plans: bool = False

    # Planning and execution.
    intents_path: str | None = None
    approval_policy: ApprovalPolicy = "flagged"
    max_plan_repairs: int = Field(2, ge=0, le=10)
    # Read the planner's answer as it streams and start each step that needs nobody's
    # approval as soon as it is written (`nodes.early_start`); false: the whole plan first.
    stream_plans: bool = True
    max_replans: int = Field(1, ge=0, le=5)
    max_todos: int = Field(50, ge=1, le=10_000)
    todo_timeout_s: float = Field(300.0, gt=0)
    todo_retries: int = Field(2, ge=0, le=10)
    todo_retry_backoff_s: float = Field(0.5, ge=0)
    http_allowlist: tuple[str, ...] = ()
    http_timeout_s: float = Field(30.0, gt=0)
    # A2A agents a ToDo can be handed to (executor `a2a:<name>`): `name=URL,...`; the URLs
    # (and those their agent cards name) must be on the allow-list; an agent's steps need
    # approval unless it is declared read-only. The server looks at their tasks every
    # `a2a_poll_s` seconds while a conversation waits for one.
    a2a_agents: dict[str, str] = Field(default_factory=dict)
    a2a_allowlist: tuple[str, ...] = ()
    a2a_read_only: tuple[str, ...] = ()
    a2a_poll_s: float = Field(2.0, gt=0)
    a2a_timeout_s: float = Field(30.0, gt=0)
    # Tools (docs/tools.md): catalogue files (`a.yaml,b.json`), MCP servers
    # (`name=command line` or `name=URL`, comma-separated), the URL prefixes MCP servers
    # reached over HTTP must be under, per-call timeout, how long a server's listing is
    # kept; and how many tools a planning prompt lists at most (a larger catalogue is
    # narrowed to the tools closest to the request).
    tools_files: tuple[str, ...] = ()
    mcp_servers: dict[str, str] = Field(default_factory=dict)
    mcp_allowlist: tuple[str, ...] = ()
    mcp_timeout_s: float = Field(30.0, gt=0)
    mcp_list_ttl_s: float = Field(300.0, ge=0)
    planner_max_tools: int = Field(12, ge=1, le=200)
    # A first plan's step for a request's action N names one of the tools closest to that
    # action (or an executor); 0: any tool of the catalogue.
    planner_action_tools: int = Field(3, ge=0, le=200)
    # Whether a run config may lower the approval policy or widen the http allow-list.
    allow_run_overrides: bool = False

    # Redis checkpoints.
    redis_url: str | None = Field(None, validation_alias=AliasChoices("CPA_REDIS_URL", "REDIS_URL"))
    redis_prefix: str = "cpa"
    redis_ttl_s: int | None = Field(7 * 24 * 3600, ge=1)
    # How long a checkpoint write waits out Redis being down (a restart, a Cluster's
    # failover) before the run stops (and is carried on once Redis is back).
    redis_write_wait_s: float = Field(30.0, ge=0, le=600)
    data_dir: str | None = None

    @field_validator(
        "http_allowlist",
        "a2a_allowlist",
        "a2a_read_only",
        "tools_files",
        "mcp_allowlist",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """`a,b,c` from the environment."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: str | None) -> str | None:
        """Malformed is a bad setting, not a Redis that cannot be reached."""
        if value is not None:
            check_redis_url(value)
        return value

    @field_validator("a2a_agents", "mcp_servers", mode="before")
    @classmethod
    def _split_agents(cls, value: Any) -> Any:
        """`name=URL,name=URL` from the environment (MCP servers: `name=command line` too);
        a name is letters, digits, `._-`."""
        if not isinstance(value, str):
            return value
        agents: dict[str, str] = {}
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            name, eq, url = (s.strip() for s in entry.partition("="))
            if not eq or not _AGENT_NAME.fullmatch(name) or not url:
                raise ValueError(f"{entry!r} is not name=URL (name: letters, digits, ._-)")
            agents[name] = url
        return agents

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Settings:
        """These settings with the keys of a run config's `configurable` that name a setting.

        Raises ConfigError for a value that is unusable, or that would lower the approval
        policy or widen the http allow-list while `allow_run_overrides` is off.
        """
        if not overrides:
            return self
        picked = {k: v for k, v in overrides.items() if k in type(self).model_fields}
        if not picked:
            return self
        if "allow_run_overrides" in picked:
            raise ConfigError(
                "allow_run_overrides (CPA_ALLOW_RUN_OVERRIDES) is set in the environment "
                "only, not in a run config"
            )
        # What may start programs, read files or reach servers is the environment's alone.
        for name in ENVIRONMENT_ONLY:
            if name in picked and picked[name] != getattr(self, name):
                raise ConfigError(
                    f"{name} (CPA_{name.upper()}) is set in the environment only, not in a "
                    "run config"
                )
        if "llm_api_key" not in picked and any(
            name in picked and picked[name] != getattr(self, name) for name in LLM_ENDPOINT
        ):
            # The server's key is for the server's LLM: a run pointed elsewhere brings its own.
            picked["llm_api_key"] = None
        changed = self.validated({**self.model_dump(), **picked}, source="run config")
        if not self.allow_run_overrides:
            self._check_not_weaker(changed)
        return changed

    def _check_not_weaker(self, changed: Settings) -> None:
        """Refuse a run config that lowers the approval policy or widens the allow-list."""
        if _POLICY_RANK[changed.approval_policy] < _POLICY_RANK[self.approval_policy]:
            raise ConfigError(
                f"approval_policy: a run config cannot lower it from {self.approval_policy!r} "
                f"to {changed.approval_policy!r} (the server allows that only with "
                "CPA_ALLOW_RUN_OVERRIDES=true)"
            )
        added = [entry for entry in changed.http_allowlist if entry not in self.http_allowlist]
        widened = [
            name
            for name in ("a2a_agents", "a2a_allowlist")
            if not set(_items(getattr(changed, name))) <= set(_items(getattr(self, name)))
        ]
        if widened or set(changed.a2a_read_only) - set(self.a2a_read_only):
            raise ConfigError(
                f"{', '.join(widened) or 'a2a_read_only'}: a run config cannot add A2A agents "
                "or allowed URLs, nor declare more agents read-only (the server allows "
                "that only with CPA_ALLOW_RUN_OVERRIDES=true)"
            )
        if added:
            raise ConfigError(
                f"http_allowlist: a run config cannot add {', '.join(added)} to the "
                "allow-list, only leave entries out (the server allows more only with "
                "CPA_ALLOW_RUN_OVERRIDES=true)"
            )

    # Derived values -------------------------------------------------------------------

    @property
    def provider(self) -> Provider | None:
        """The LLM provider: explicit, or inferred from which connection settings exist."""
        if self.llm_provider is not None:
            return self.llm_provider
        if self.llm_base_url:
            return "openai_compatible"
        if self.llm_api_key:
            return "openai"
        if self.ollama_host:
            return "ollama"
        return None

    def model_for(self, role: Role) -> str | None:
        """The model name for one role, falling back to `llm_model`."""
        specific = {
            "router": self.router_model,
            "planner": self.planner_model,
            "executor": self.executor_model,
        }[role]
        return specific or self.llm_model

    def max_tokens_for(self, role: Role) -> int:
        """The token limit of one role's answers."""
        specific = {
            "router": self.router_max_tokens,
            "planner": self.planner_max_tokens,
            "executor": self.executor_max_tokens,
        }[role]
        return specific or self.llm_max_tokens or ROLE_DEFAULTS[role].max_tokens

    def timeout_for(self, role: Role) -> float:
        """How long one call of a role's model may take, in seconds."""
        specific = {
            "router": self.router_timeout_s,
            "planner": self.planner_timeout_s,
            "executor": self.executor_timeout_s,
        }[role]
        return specific or self.llm_timeout_s or ROLE_DEFAULTS[role].timeout_s

    @property
    def structured_output_method(self) -> StructuredOutputMethod:
        # json_schema everywhere: OpenAI, Ollama (`format`) and llama.cpp's server (a
        # grammar) constrain the answer to the schema. Forced tool calls are not honoured
        # by llama.cpp (`tool_choice` as an object is ignored), so they are no default.
        return self.llm_structured_output or "json_schema"

    @property
    def max_tokens_param(self) -> Literal["max_completion_tokens", "max_tokens"]:
        if self.llm_max_tokens_param is not None:
            return self.llm_max_tokens_param
        return "max_tokens" if self.provider == "openai_compatible" else "max_completion_tokens"

    @property
    def data_path(self) -> Path:
        """Per-user data directory (the embedded Valkey's files live here)."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "cpa-planner"


@dataclass(frozen=True)
class RoleDefaults:
    max_tokens: int
    timeout_s: float


#: Defaults per role (the settings override them): a router answers in a few tokens.
ROLE_DEFAULTS: dict[Role, RoleDefaults] = {
    "router": RoleDefaults(max_tokens=128, timeout_s=30.0),
    "planner": RoleDefaults(max_tokens=1024, timeout_s=120.0),
    "executor": RoleDefaults(max_tokens=512, timeout_s=120.0),
}


def _items(value: Any) -> list[Any]:
    return list(value.items()) if isinstance(value, dict) else list(value)


LLM_SETTINGS_HINT = (
    "set CPA_LLM_PROVIDER=openai with OPENAI_API_KEY, or CPA_LLM_PROVIDER=ollama with "
    "OLLAMA_HOST, or CPA_LLM_BASE_URL for an OpenAI-compatible server; and CPA_LLM_MODEL "
    "(or CPA_ROUTER_MODEL / CPA_PLANNER_MODEL / CPA_EXECUTOR_MODEL)"
)
