"""The settings layer (`graph.envsettings`): every settings class read the same way.

Which variable wins, blank as unset, a bad value as one line naming its variable (never the
value), a given mapping instead of the process's environment, and the docs naming every
variable there is.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.settings import ServerConfigError, ServerSettings, digest
from cli.intents_cmd import registry_path
from cli.settings import CliSettings
from graph.config import ConfigError, Settings
from graph.envsettings import EnvSettings
from graph.history.settings import HistorySettings
from graph.telemetry.settings import TelemetryConfigError, TelemetrySettings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_CLASSES: list[type[EnvSettings]] = [
    Settings,
    ServerSettings,
    TelemetrySettings,
    CliSettings,
    HistorySettings,
]
SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    ("cls", "field", "env", "expected"),
    [
        # The CPA_ name wins over the well-known one...
        (Settings, "llm_api_key", {"CPA_LLM_API_KEY": "ours", "OPENAI_API_KEY": "theirs"}, "ours"),
        (
            Settings,
            "redis_url",
            {"CPA_REDIS_URL": "redis://a", "REDIS_URL": "redis://b"},
            "redis://a",
        ),
        (Settings, "ollama_host", {"OLLAMA_HOST": "http://o"}, "http://o"),
        # ...and a blank one is unset, so the well-known one is read.
        (
            Settings,
            "llm_base_url",
            {"CPA_LLM_BASE_URL": " ", "OPENAI_BASE_URL": "http://b"},
            "http://b",
        ),
        (
            TelemetrySettings,
            "otlp_endpoint",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://all",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t",
            },
            "http://t",
        ),
        (
            TelemetrySettings,
            "otlp_endpoint",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://all"},
            "http://all",
        ),
        (ServerSettings, "services_factory", {"CPA_SERVER_SERVICES": "m:f"}, "m:f"),
    ],
)
def test_which_variable_wins(
    cls: type[EnvSettings], field: str, env: dict[str, str], expected: str
) -> None:
    assert getattr(cls.from_env(env), field) == expected


def test_a_variable_not_of_a_field_is_not_read() -> None:
    # A field aliased to OpenTelemetry's names does not answer to CPA_<FIELD> as well.
    telemetry = TelemetrySettings.from_env(
        {"CPA_OTLP_ENDPOINT": "http://x", "CPA_SERVICE_NAME": "x", "CPA_OTEL_SDK_DISABLED": "x"}
    )
    assert telemetry == TelemetrySettings()


def test_otel_sdk_disabled_turns_traces_off() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert TelemetrySettings.from_env(env).otlp_endpoint == "http://collector:4318"
    disabled = TelemetrySettings.from_env({**env, "OTEL_SDK_DISABLED": "true"})
    assert disabled.otlp_endpoint is None


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_variable_is_unset(blank: str) -> None:
    env = {
        "CPA_MAX_TODOS": blank,
        "CPA_APPROVAL_POLICY": blank,
        "CPA_HTTP_ALLOWLIST": blank,
        "REDIS_URL": blank,
    }
    assert Settings.from_env(env) == Settings()
    assert ServerSettings.from_env({"CPA_PORT": blank, "CPA_API_KEYS": blank}) == ServerSettings()
    assert TelemetrySettings.from_env({"CPA_METRICS": blank}).metrics is True
    assert CliSettings.from_env({"CPA_SERVER_URL": blank}).server_url is None


def test_values_are_stripped_and_parsed() -> None:
    settings = Settings.from_env(
        {
            "CPA_MAX_TODOS": " 7 ",
            "CPA_ALLOW_RUN_OVERRIDES": "on",
            "CPA_SUMMARIZE_TEMPLATE_PLANS": "1",
            "CPA_HTTP_ALLOWLIST": " http://a/ , http://b/x,, ",
            "CPA_A2A_AGENTS": "billing=http://b:9/a, search = http://s/",
        }
    )
    assert settings.max_todos == 7
    assert settings.allow_run_overrides is True and settings.summarize_template_plans is True
    assert settings.http_allowlist == ("http://a/", "http://b/x")
    assert settings.a2a_agents == {"billing": "http://b:9/a", "search": "http://s/"}
    telemetry = TelemetrySettings.from_env({"CPA_METRICS": "No", "CPA_LOG_FORMAT": "JSON"})
    assert telemetry.metrics is False and telemetry.log_format == "json"


def test_a_list_is_never_json() -> None:
    # pydantic-settings would decode a list as JSON; ours are comma-separated text.
    settings = Settings.from_env({"CPA_A2A_READ_ONLY": '["a","b"]'})
    assert settings.a2a_read_only == ('["a"', '"b"]')


@pytest.mark.parametrize(
    ("cls", "env", "variable", "error"),
    [
        (Settings, {"CPA_MAX_TODOS": "many"}, "CPA_MAX_TODOS", ConfigError),
        (Settings, {"CPA_TODO_TIMEOUT_S": "-1"}, "CPA_TODO_TIMEOUT_S", ConfigError),
        (Settings, {"CPA_ALLOW_RUN_OVERRIDES": "maybe"}, "CPA_ALLOW_RUN_OVERRIDES", ConfigError),
        (Settings, {"CPA_APPROVAL_POLICY": "sometimes"}, "CPA_APPROVAL_POLICY", ConfigError),
        (Settings, {"CPA_A2A_AGENTS": "billing,search=http://s/"}, "CPA_A2A_AGENTS", ConfigError),
        (ServerSettings, {"CPA_PORT": "0"}, "CPA_PORT", ServerConfigError),
        (ServerSettings, {"CPA_LEASE_S": "soon"}, "CPA_LEASE_S", ServerConfigError),
        (ServerSettings, {"CPA_API_KEYS": "acme:k,"}, "CPA_API_KEYS", ServerConfigError),
        (TelemetrySettings, {"CPA_METRICS": "sure"}, "CPA_METRICS", TelemetryConfigError),
        (TelemetrySettings, {"CPA_LOG_LEVEL": "loud"}, "CPA_LOG_LEVEL", TelemetryConfigError),
        # The variable that was read is named, not the first of the field's names.
        (
            TelemetrySettings,
            {"OTEL_SDK_DISABLED": "nah"},
            "OTEL_SDK_DISABLED",
            TelemetryConfigError,
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_its_variable(
    cls: type[EnvSettings], env: dict[str, str], variable: str, error: type[ValueError]
) -> None:
    with pytest.raises(error) as bad:
        cls.from_env(env)
    message = str(bad.value)
    assert variable in message and "\n" not in message, message
    assert "validation error" not in message and "pydantic" not in message, message


@pytest.mark.parametrize(
    ("cls", "variable"),
    [
        (Settings, "CPA_MAX_TODOS"),
        (Settings, "CPA_LLM_TEMPERATURE"),
        (Settings, "CPA_LLM_PROVIDER"),
        (Settings, "CPA_ALLOW_RUN_OVERRIDES"),
        (ServerSettings, "CPA_MAX_BODY_BYTES"),
        (ServerSettings, "CPA_API_KEYS"),
        (TelemetrySettings, "CPA_LOG_FORMAT"),
        (TelemetrySettings, "OTEL_SDK_DISABLED"),
    ],
)
def test_an_error_never_shows_the_value(cls: type[EnvSettings], variable: str) -> None:
    # Whatever a mistyped variable holds may be a key pasted into the wrong place.
    with pytest.raises(ValueError) as bad:
        cls.from_env({variable: SECRET})
    message = str(bad.value)
    assert variable in message
    for fragment in ("sk-live", "0123", "abcdef"):
        assert fragment not in message, message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis//:s3cr3t-pw@localhost:6379", "it must have the form redis://"),
        ("http://:s3cr3t-pw@localhost:6379", "it must have the form redis://"),
        ("redis://:s3cr3t-pw@localhost:noport/0", "Port could not be cast"),
        ("redis+sentinel://:s3cr3t-pw@sentinel:26379/", "the path must be /service_name"),
    ],
)
def test_a_malformed_redis_url_is_a_bad_setting_not_an_unreachable_redis(
    url: str, why: str
) -> None:
    with pytest.raises(ConfigError) as bad:
        Settings.from_env({"REDIS_URL": url})
    message = str(bad.value)
    assert message.startswith("bad setting redis_url (REDIS_URL) in the environment: malformed")
    assert why in message and "s3cr3t" not in message, message
    assert "unreachable" not in message and "start Redis" not in message
    # Well-formed URLs of every kind are taken as they are.
    for good in (
        "redis://h:6379/0",
        "rediss://u:p@h",
        "unix:///run/v.sock",
        "redis+sentinel://a:1/m",
    ):
        assert Settings.from_env({"REDIS_URL": good}).redis_url == good


def test_secrets_are_not_in_the_settings_repr() -> None:
    shown = [
        repr(Settings(llm_api_key=SECRET)),
        repr(TelemetrySettings(metrics_token=SECRET)),
        repr(CliSettings(api_key=SECRET)),
        repr(ServerSettings.from_env({"CPA_API_KEYS": f"acme:{SECRET}"})),
    ]
    for text in shown:
        assert "sk-live" not in text, text


def test_from_env_with_a_mapping_reads_only_the_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPA_MAX_TODOS", "7")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("CPA_PORT", "9")
    monkeypatch.setenv("CPA_LOG_FORMAT", "json")
    monkeypatch.setenv("CPA_SERVER_URL", "http://elsewhere")
    assert Settings.from_env({}) == Settings()
    assert ServerSettings.from_env({}) == ServerSettings()
    assert TelemetrySettings.from_env({}) == TelemetrySettings()
    assert CliSettings.from_env({}) == CliSettings()
    # Without a mapping, the process's environment is read.
    assert Settings.from_env().max_todos == 7 and Settings.from_env().llm_api_key == SECRET
    assert ServerSettings.from_env().port == 9
    assert TelemetrySettings.from_env().log_format == "json"
    assert CliSettings.from_env().server_url == "http://elsewhere"


def test_keyword_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPA_MAX_TODOS", "7")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere")
    monkeypatch.setenv("CPA_METRICS", "false")
    settings = Settings(redis_prefix="mine")
    assert settings.max_todos == 50 and settings.redis_url is None
    assert settings.redis_prefix == "mine"
    assert TelemetrySettings().metrics is True
    # A run config is validated the same way, and reads no environment either.
    assert settings.with_overrides({"max_todos": 3}).max_todos == 3
    with pytest.raises(ConfigError, match=r"max_todos \(CPA_MAX_TODOS\) in the run config"):
        settings.with_overrides({"max_todos": 0})


def test_server_keys_by_keyword_and_from_a_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("globex:g-key\n")
    settings = ServerSettings(api_keys={digest("a-key"): "acme"}, api_keys_file=keys)
    assert {d: p.tenant for d, p in settings.api_keys.items()} == {
        digest("a-key"): "acme",
        digest("g-key"): "globex",
    }
    with pytest.raises(ServerConfigError, match="two tenants"):
        ServerSettings.from_env({"CPA_API_KEYS": "acme:g-key", "CPA_API_KEYS_FILE": str(keys)})


def test_the_cli_flag_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPA_INTENTS_PATH", " /etc/cpa/intents.yaml ")
    assert registry_path(None) == "/etc/cpa/intents.yaml"
    assert registry_path("mine.yaml") == "mine.yaml"
    monkeypatch.setenv("CPA_INTENTS_PATH", "")
    assert registry_path(None) is None


def _documentation() -> str:
    return "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))])


def test_the_docs_name_every_variable() -> None:
    text = _documentation()
    missing = [
        f"{cls.__name__}.{field}"
        for cls in SETTINGS_CLASSES
        for field in cls.model_fields
        # The graph's settings are a table of field names (README "Configuration").
        if not (cls is Settings and f"`{field}`" in text)
        and not all(name in text for name in cls.env_names(field))
    ]
    assert not missing, missing


def test_every_variable_the_docs_name_exists() -> None:
    known = {
        name for cls in SETTINGS_CLASSES for f in cls.model_fields for name in cls.env_names(f)
    }
    named = set(re.findall(r"\bCPA_[A-Z0-9_]*[A-Z0-9]\b", _documentation()))
    # Tests' own variables are not settings; nor are the compose file's own (`${CPA_PUBLISH}`).
    compose = set(re.findall(r"\$\{(CPA_[A-Z0-9_]+)", (ROOT / "deploy/compose.yaml").read_text()))
    unknown = {
        n for n in named - known - compose if not n.startswith(("CPA_TEST_", "CPA_CONSOLE_"))
    }
    assert not unknown, unknown
