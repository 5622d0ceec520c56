"""The real LLM client code paths (langchain-openai, langchain-ollama) against a scripted server.

`tests/support/fake_llm.py` answers like an OpenAI-compatible server or like Ollama and records
each request, so these tests see exactly what our configuration makes the clients send (the
structured-output method, the token limit per role, the timeout) and what each way a call
can go wrong becomes: `llm_unreachable`, `llm_timeout`, `llm_server_error`, `llm_truncated`,
`llm_bad_output`, each naming the role, the model and the setting to look at.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from graph.builder import make_services
from graph.config import ROLE_DEFAULTS, ConfigError, Settings
from graph.executor_registry import ExecutorRegistry
from graph.llm import (
    ChatModels,
    LLMCallError,
    LLMError,
    LLMNotConfiguredError,
    LLMOutputError,
    LLMServerError,
    LLMTimeoutError,
    LLMTruncatedError,
    LLMUnreachableError,
)
from graph.plan_schema import plan_json_schema, step_variants
from graph.plan_steps import PlanDraft, plan_draft_model
from graph.tools.catalogue import Catalogue
from graph.tools.executors import executor_entries
from nodes.executors import DesktopExecutor, LLMExecutor
from tests.support.fake_llm import FakeLLMServer, Reply
from tests.support.planner_harness import Conversation

DRAFT = {
    "goal": "Mail Tom",
    "steps": [{"title": "Draft", "description": "", "tool": "llm", "arguments": {}, "after": []}],
}
SCHEMA = plan_draft_model(5)
# What the planner holds the model to: one step variant per catalogue entry.
JSON_SCHEMA = plan_json_schema(
    Catalogue.merge(executor_entries(ExecutorRegistry([DesktopExecutor(), LLMExecutor()])), []),
    5,
)
# What no answer a person reads may contain: library dumps and help pages.
LIBRARY_NOISE = ("errors.pydantic.dev", "python.langchain.com", "CompletionUsage", "Traceback")


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(default=Reply(structured=DRAFT)) as server:
        yield server


def _compatible(server: FakeLLMServer, **extra: str) -> Settings:
    return Settings.from_env(
        {"CPA_LLM_BASE_URL": f"{server.url}/v1", "CPA_LLM_MODEL": "smol", **extra}
    )


def _clean(message: str) -> None:
    for noise in LIBRARY_NOISE:
        assert noise not in message, message


# -- what the clients send ----------------------------------------------------------------


async def test_openai_compatible_server_gets_json_schema_and_max_tokens_per_role(
    llm_server: FakeLLMServer,
) -> None:
    settings = _compatible(llm_server, CPA_PLANNER_MODEL="planner-model")
    assert settings.provider == "openai_compatible"
    models = ChatModels(settings)
    draft = await models.structured(
        "planner", SCHEMA, [("user", "mail Tom")], json_schema=JSON_SCHEMA
    )
    assert draft.to_plan().todos[0].id == "t1"
    assert await models.text("executor", [("user", "hi")]) == "hello from the server"

    (path1, plan_call), (_path2, text_call) = llm_server.requests
    assert path1 == "/v1/chat/completions"
    assert plan_call["model"] == "planner-model" and text_call["model"] == "smol"
    # json_schema: the server constrains the answer to the plan's schema.
    response_format = plan_call["response_format"]
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]["schema"]
    assert schema["properties"] == JSON_SCHEMA["properties"]
    tools = [v["properties"]["tool"] for v in step_variants(schema, 1)]
    assert tools == [{"const": "desktop"}, {"const": "llm"}]
    assert "tools" not in plan_call and "tool_choice" not in plan_call
    # Compatible servers get `max_tokens`, by role.
    assert plan_call["max_tokens"] == ROLE_DEFAULTS["planner"].max_tokens
    assert text_call["max_tokens"] == ROLE_DEFAULTS["executor"].max_tokens
    assert "max_completion_tokens" not in plan_call


async def test_token_limits_and_timeouts_are_settings_per_role(llm_server: FakeLLMServer) -> None:
    settings = _compatible(
        llm_server, CPA_ROUTER_MAX_TOKENS="16", CPA_LLM_MAX_TOKENS="300", CPA_PLANNER_TIMEOUT_S="7"
    )
    assert settings.max_tokens_for("router") == 16
    assert settings.max_tokens_for("planner") == settings.max_tokens_for("executor") == 300
    assert settings.timeout_for("planner") == 7
    assert settings.timeout_for("router") == ROLE_DEFAULTS["router"].timeout_s
    models = ChatModels(settings)
    await models.text("router", [("user", "hi")])
    await models.text("planner", [("user", "hi")])
    assert [body["max_tokens"] for _, body in llm_server.requests] == [16, 300]
    assert models.get("planner").request_timeout == 7  # type: ignore[attr-defined]


async def test_openai_provider_uses_json_schema_and_max_completion_tokens(
    llm_server: FakeLLMServer,
) -> None:
    settings = Settings(
        llm_provider="openai",
        llm_api_key="sk-test",
        llm_base_url=f"{llm_server.url}/v1",
        llm_model="gpt-x",
        llm_max_tokens=32,
    )
    draft = await ChatModels(settings).structured("planner", SCHEMA, [("user", "x")])
    assert draft.goal == "Mail Tom"
    (_path, call) = llm_server.requests[0]
    assert call["response_format"]["type"] == "json_schema"
    assert call["max_completion_tokens"] == 32 and "max_tokens" not in call


async def test_structured_output_method_is_configurable(llm_server: FakeLLMServer) -> None:
    settings = _compatible(llm_server, CPA_LLM_STRUCTURED_OUTPUT="function_calling")
    draft = await ChatModels(settings).structured("planner", SCHEMA, [("user", "x")])
    assert draft.goal == "Mail Tom"
    call = llm_server.requests[0][1]
    assert call["tools"][0]["function"]["name"] == "PlanDraft" and "response_format" not in call


async def test_json_mode_gets_the_schema_from_the_prompt(llm_server: FakeLLMServer) -> None:
    settings = _compatible(llm_server, CPA_LLM_STRUCTURED_OUTPUT="json_mode")
    draft = await ChatModels(settings).structured("planner", SCHEMA, [("user", "x")])
    assert draft.steps[0].title == "Draft"
    assert llm_server.requests[0][1]["response_format"] == {"type": "json_object"}


async def test_ollama_gets_a_format_schema_and_num_predict(llm_server: FakeLLMServer) -> None:
    settings = Settings.from_env(
        {"OLLAMA_HOST": llm_server.url, "CPA_LLM_MODEL": "llama", "CPA_LLM_MAX_TOKENS": "20"}
    )
    assert settings.provider == "ollama"
    models = ChatModels(settings)
    draft = await models.structured("planner", SCHEMA, [("user", "x")])
    assert draft.steps[0].title == "Draft"
    assert await models.text("executor", [("user", "hi")]) == "hello from the server"
    path, call = llm_server.requests[0]
    assert path == "/api/chat" and call["model"] == "llama"
    assert call["format"]["title"] == "PlanDraft"
    assert call["options"]["num_predict"] == 20


# -- errors named for what they are -------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_connection_is_llm_unreachable_after_the_retries() -> None:
    settings = Settings(
        llm_base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        llm_model="m",
        llm_max_retries=1,
        llm_timeout_s=5,
    )
    with pytest.raises(LLMUnreachableError) as failed:
        await ChatModels(settings).text("router", [("user", "x")])
    error = failed.value
    assert error.code == "llm_unreachable" and isinstance(error, LLMCallError)
    assert error.role == "router" and error.model == "m"
    assert "router model (m at http://127.0.0.1:" in str(error)
    assert "after 2 attempts" in str(error)
    _clean(str(error))
    state = await Conversation(make_services(settings)).start("Book me a flight to Berlin")
    assert state["status"] == "failed"
    assert state["result"]["error"]["code"] == "llm_unreachable"


async def test_no_answer_in_time_is_llm_timeout_and_not_retried(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default = Reply(delay_s=3)
    settings = _compatible(llm_server, CPA_ROUTER_TIMEOUT_S="0.5", CPA_LLM_MAX_RETRIES="2")
    with pytest.raises(LLMTimeoutError) as failed:
        await ChatModels(settings).text("router", [("user", "x")])
    assert failed.value.code == "llm_timeout"
    assert "within 0.5 s (CPA_ROUTER_TIMEOUT_S)" in str(failed.value)
    assert llm_server.count() == 1  # a timeout is not retried: it would wait as long again


@pytest.mark.parametrize(("status", "tries"), [(500, 3), (429, 3), (400, 1)])
async def test_an_error_status_is_llm_server_error_retried_only_when_worth_it(
    llm_server: FakeLLMServer, status: int, tries: int
) -> None:
    llm_server.default = Reply(status=status, error="the request exceeds the context size")
    settings = _compatible(llm_server, CPA_LLM_MAX_RETRIES="2")
    with pytest.raises(LLMServerError) as failed:
        await ChatModels(settings).text("executor", [("user", "x")])
    message = str(failed.value)
    assert failed.value.code == "llm_server_error" and failed.value.status == status
    assert f"HTTP {status}: the request exceeds the context size" in message
    assert llm_server.count() == tries
    _clean(message)


async def test_an_answer_cut_off_at_the_token_limit_is_llm_truncated(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default = Reply(
        content='{"goal": "Mail Tom", "steps": [{"title": "Dra', finish_reason="length"
    )
    settings = _compatible(llm_server)
    with pytest.raises(LLMTruncatedError) as failed:
        await ChatModels(settings).structured("planner", SCHEMA, [("user", "x")])
    error = failed.value
    limit = ROLE_DEFAULTS["planner"].max_tokens
    assert error.code == "llm_truncated" and error.role == "planner" and error.model == "smol"
    assert f"token limit ({limit} tokens, CPA_PLANNER_MAX_TOKENS)" in str(error)
    assert error.raw is not None and error.raw.startswith('{"goal"')
    _clean(str(error))
    # Plain text cut off is kept, marked as cut: still worth reading.
    llm_server.default = Reply(text="Rome, the capital of", finish_reason="length")
    assert await ChatModels(settings).text("executor", [("user", "x")]) == "Rome, the capital of…"


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(structured={"goal": "g", "steps": [{"title": "", "executor": "Tom"}]}), "steps.0"),
        (Reply(content="Sure! Here is your plan: 1. write 2. send"), "not a JSON object"),
        (Reply(content=""), "empty"),
    ],
)
async def test_an_answer_that_does_not_fit_is_llm_bad_output_naming_method_and_setting(
    llm_server: FakeLLMServer, reply: Reply, why: str
) -> None:
    llm_server.default = reply
    with pytest.raises(LLMOutputError) as failed:
        await ChatModels(_compatible(llm_server)).structured("planner", SCHEMA, [("user", "x")])
    error = failed.value
    message = str(error)
    assert error.code == "llm_bad_output" and not isinstance(error, LLMTruncatedError)
    assert why in message and "structured output by json_schema" in message
    assert "CPA_LLM_STRUCTURED_OUTPUT=function_calling or json_mode" in message
    _clean(message)


async def test_no_tool_call_under_function_calling_says_so_and_what_to_try(
    llm_server: FakeLLMServer,
) -> None:
    # What llama.cpp does with a chat template without tools: it answers in prose.
    llm_server.default = Reply(text="To create a table you can use...", tool_call=False)
    settings = _compatible(llm_server, CPA_LLM_STRUCTURED_OUTPUT="function_calling")
    with pytest.raises(LLMOutputError) as failed:
        await ChatModels(settings).structured("router", SCHEMA, [("user", "x")])
    message = str(failed.value)
    assert "structured output by function_calling" in message
    assert "CPA_LLM_STRUCTURED_OUTPUT=json_schema or json_mode" in message
    _clean(message)


def test_every_code_is_distinct_and_known() -> None:
    codes = {
        cls.code
        for cls in (
            LLMNotConfiguredError,
            LLMUnreachableError,
            LLMTimeoutError,
            LLMServerError,
            LLMTruncatedError,
            LLMOutputError,
        )
    }
    assert codes == {
        "llm_not_configured",
        "llm_unreachable",
        "llm_timeout",
        "llm_server_error",
        "llm_truncated",
        "llm_bad_output",
    }
    assert issubclass(LLMTruncatedError, LLMOutputError) and issubclass(LLMOutputError, LLMError)
    assert PlanDraft.model_fields.keys() == {"goal", "steps"}


def test_no_provider_names_the_settings() -> None:
    with pytest.raises(LLMNotConfiguredError) as missing:
        ChatModels(Settings()).get("planner", "plan this request")
    text = str(missing.value)
    assert "planner" in text and "OPENAI_API_KEY" in text and "OLLAMA_HOST" in text


def test_bad_settings_are_one_clear_line() -> None:
    with pytest.raises(ConfigError) as bad:
        Settings.from_env({"CPA_LLM_PROVIDER": "claude"})
    message = str(bad.value)
    assert "llm_provider" in message and "CPA_LLM_PROVIDER" in message and "\n" not in message
    with pytest.raises(ConfigError, match="CPA_PLANNER_MAX_TOKENS"):
        Settings.from_env({"CPA_PLANNER_MAX_TOKENS": "0"})
