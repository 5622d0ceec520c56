"""Settings read from the environment: the base of every settings class (`EnvSettings`).

Each settings class is an `EnvSettings`, a pydantic-settings `BaseSettings`:
`graph.config.Settings` (the graph), `graph.telemetry.settings.TelemetrySettings`,
`api.settings.ServerSettings` (the HTTP layer) and `cli.settings.CliSettings`. A field's
variable is `CPA_<FIELD>`, unless its `validation_alias` names the variables: in
`AliasChoices("CPA_REDIS_URL", "REDIS_URL")` the first one set wins.

The environment is read by `from_env` only, which validates what an `EnvironmentSource`
read from the mapping it was given. Built with keyword arguments, settings hold those and
the defaults, whatever the process's environment says: a test or an embedder gets what it
wrote (the constructor is a plain model's, see `EnvSettings.__init__`).

How a variable's text is read:

- names in any case (pydantic-settings' default), though the docs write them upper case;
- blank (empty or only spaces) is unset, and a value loses its surrounding spaces;
- a boolean in pydantic's forms: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, ...;
- never as JSON (`enable_decoding=False`): lists are `a,b,c` and maps `name=URL,...`, split
  by the field's own validator.

A value that does not fit is one line naming the setting, its variable and what is wrong,
never the value (it may be a key), raised as the class's `config_error` (`ConfigError`;
`ServerConfigError`, `TelemetryConfigError`):
`bad setting max_todos (CPA_MAX_TODOS) in the environment: Input should be greater than or
equal to 1`. An error a validator raises as the class's own `config_error` (it names the
variable itself) comes out as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

__all__ = ["ConfigError", "EnvSettings", "EnvironmentSource"]

ENV_PREFIX = "CPA_"


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""


class EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping, values stripped.

    The environment knows a field by its variables only: `CPA_<FIELD>`, or the names its
    `validation_alias` lists. (The model itself also takes field names, for keyword
    arguments and run configs; without the override below, a field aliased to, say,
    `OTEL_SERVICE_NAME` would answer to `CPA_SERVICE_NAME` too.)
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.config = {**self.config, "validate_by_name": False}
        # `env_vars`: the variables the source reads (the base class filled it from
        # os.environ); pydantic-settings' own parsing, of the mapping given, values stripped.
        stripped = {name: value.strip() for name, value in environ.items()}
        self.env_vars = parse_env_vars(
            stripped, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class EnvSettings(BaseSettings):
    """Settings read from the environment by `from_env`, or given as keyword arguments."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        enable_decoding=False,
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    #: What an unusable value raises (a `ValueError` whose message names the variable).
    config_error: ClassVar[type[ValueError]] = ConfigError

    # A plain model's constructor, not BaseSettings': keyword arguments are validated and
    # nothing else is read (BaseSettings' would also rebuild its sources, parsing
    # os.environ, on every construction and every `model_validate`: 25 times slower).
    __init__ = BaseModel.__init__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Every setting from the environment: `environ`, else `os.environ`.

        Raises `config_error` naming the variable of the first value that does not fit.
        """
        env = os.environ if environ is None else environ
        return cls.validated(EnvironmentSource(cls, env)(), source="environment", environ=env)

    @classmethod
    def validated(
        cls,
        values: Mapping[str, Any],
        *,
        source: str,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Settings from `values`, keyed by field name or variable; `source` names them in
        an error ("environment", "run config"), `environ` says which variable was read."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise cls._config_error(exc.errors()[0], source, environ) from None

    @classmethod
    def env_names(cls, field: str) -> tuple[str, ...]:
        """The variables a field is read from, the first that is set winning."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            return tuple(str(choice) for choice in alias.choices)
        if isinstance(alias, str):
            return (alias,)
        return (f"{ENV_PREFIX}{field}".upper(),)

    @classmethod
    def _config_error(
        cls, error: ErrorDetails, source: str, environ: Mapping[str, str] | None
    ) -> ValueError:
        """One line: the setting, its variable, what is wrong; never the value."""
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, cls.config_error):
            return cause
        reason = str(cause) if isinstance(cause, ValueError) else error["msg"]
        field = cls._field_named(str(error["loc"][0])) if error["loc"] else None
        if field is None:
            return cls.config_error(f"bad settings in the {source}: {reason}")
        names = cls.env_names(field)
        read = next((n for n in names if environ and environ.get(n, "").strip()), names[0])
        return cls.config_error(f"bad setting {field} ({read}) in the {source}: {reason}")

    @classmethod
    def _field_named(cls, key: str) -> str | None:
        """The field a validated key stands for: its name, or one of its variables."""
        if key in cls.model_fields:
            return key
        return next((f for f in cls.model_fields if key in cls.env_names(f)), None)
