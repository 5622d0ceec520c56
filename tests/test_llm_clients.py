"""The real LLM client code paths (langchain-openai, langchain-ollama) against local servers.

A small HTTP server on loopback answers like an OpenAI-compatible server or like Ollama and
records each request, so the tests see exactly what our configuration makes the clients
send: the structured-output method, the token-limit parameter, the model per role.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from graph.builder import make_services
from graph.config import ConfigError, Settings
from graph.llm import ChatModels, LLMCallError, LLMNotConfiguredError
from graph.planning import PlanDraft
from tests.planner_harness import Conversation

PLAN = {
    "goal": "Mail Tom",
    "todos": [{"id": "t1", "title": "Draft", "executor": "llm", "depends_on": []}],
}


@dataclass
class FakeLLMServer:
    url: str
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _openai_reply(body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "hello from the server"}
    if body.get("tools"):
        name = body["tools"][0]["function"]["name"]
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(PLAN)},
                }
            ],
        }
    elif body.get("response_format"):
        message["content"] = json.dumps(PLAN)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "m"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _ollama_reply(body: dict[str, Any]) -> dict[str, Any]:
    content = json.dumps(PLAN) if body.get("format") else "hello from ollama"
    return {
        "model": body.get("model", "m"),
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": "stop",
        "total_duration": 1,
        "load_duration": 1,
        "prompt_eval_count": 1,
        "prompt_eval_duration": 1,
        "eval_count": 1,
        "eval_duration": 1,
    }


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    record: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            record.append((self.path, body))
            if self.path.endswith("/chat/completions"):
                payload, kind = json.dumps(_openai_reply(body)), "application/json"
            elif self.path == "/api/chat":
                payload, kind = json.dumps(_ollama_reply(body)) + "\n", "application/x-ndjson"
            else:
                self.send_error(404)
                return
            data = payload.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FakeLLMServer(f"http://127.0.0.1:{server.server_address[1]}", record)
    server.shutdown()


async def test_openai_compatible_server_gets_forced_tool_calls_and_max_tokens(
    llm_server: FakeLLMServer,
) -> None:
    # llama.cpp-style: no json_schema, and max_tokens instead of max_completion_tokens.
    settings = Settings.from_env(
        {
            "CPA_LLM_BASE_URL": f"{llm_server.url}/v1",
            "CPA_LLM_MODEL": "smol",
            "CPA_PLANNER_MODEL": "planner-model",
            "CPA_LLM_MAX_TOKENS": "64",
        }
    )
    assert settings.provider == "openai_compatible"
    models = ChatModels(settings)
    draft = await models.structured("planner", PlanDraft, [("user", "mail Tom")])
    assert draft.to_plan().todos[0].id == "t1"
    text = await models.text("executor", [("user", "hi")])
    assert text == "hello from the server"

    (path1, plan_call), (_path2, text_call) = llm_server.requests
    assert path1 == "/v1/chat/completions"
    assert plan_call["model"] == "planner-model" and text_call["model"] == "smol"
    assert plan_call["tool_choice"]["function"]["name"] == "PlanDraft"
    assert "response_format" not in plan_call
    assert plan_call["max_tokens"] == 64 and "max_completion_tokens" not in plan_call


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
    draft = await ChatModels(settings).structured("planner", PlanDraft, [("user", "x")])
    assert draft.goal == "Mail Tom"
    (_path, call) = llm_server.requests[0]
    assert call["response_format"]["type"] == "json_schema"
    assert call["max_completion_tokens"] == 32 and "max_tokens" not in call


async def test_structured_output_method_is_configurable(llm_server: FakeLLMServer) -> None:
    settings = Settings(
        llm_provider="openai",
        llm_api_key="sk-test",
        llm_base_url=f"{llm_server.url}/v1",
        llm_model="gpt-x",
        llm_structured_output="function_calling",
    )
    await ChatModels(settings).structured("planner", PlanDraft, [("user", "x")])
    assert "tools" in llm_server.requests[0][1]


async def test_ollama_gets_a_format_schema_and_num_predict(llm_server: FakeLLMServer) -> None:
    settings = Settings.from_env(
        {"OLLAMA_HOST": llm_server.url, "CPA_LLM_MODEL": "llama", "CPA_LLM_MAX_TOKENS": "20"}
    )
    assert settings.provider == "ollama"
    models = ChatModels(settings)
    draft = await models.structured("planner", PlanDraft, [("user", "x")])
    assert draft.todos[0].title == "Draft"
    assert await models.text("executor", [("user", "hi")]) == "hello from ollama"
    path, call = llm_server.requests[0]
    assert path == "/api/chat" and call["model"] == "llama"
    assert call["format"]["title"] == "PlanDraft"
    assert call["options"]["num_predict"] == 20


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_llm_fails_the_conversation_quickly() -> None:
    settings = Settings(
        llm_base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        llm_model="m",
        llm_max_retries=0,
        llm_timeout_s=5,
    )
    with pytest.raises(LLMCallError, match="router"):
        await ChatModels(settings).text("router", [("user", "x")])
    state = await Conversation(make_services(settings)).start("Book me a flight to Berlin")
    assert state["status"] == "failed"
    assert state["result"]["error"]["code"] == "llm_unreachable"


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
