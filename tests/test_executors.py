"""Executors: the registry, entry points, timeouts and retries, the http allow-list."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from graph.allowlist import allowed
from graph.builder import default_executors
from graph.config import Settings
from graph.executor_registry import ExecutorCall, ExecutorError, ExecutorRegistry
from graph.llm import ChatModels
from lam import MessageFactory, Plan, ToDo
from nodes.executors.http import HttpExecutor
from nodes.executors.template import TemplateExecutor
from tests.support.planner_harness import Conversation, services
from tests.support.scripted import ScriptedChatModel, UncallableChatModel, steps


def _call(todo: ToDo, inputs: dict[str, Any], settings: Settings | None = None) -> ExecutorCall:
    settings = settings or Settings()
    assign = MessageFactory("planner", "c1").assign("executor:x", todo, inputs)
    return ExecutorCall(
        todo=todo,
        inputs=inputs,
        request="the request",
        conversation_id="c1",
        assign=assign,
        settings=settings,
        models=ChatModels(settings),
    )


def test_builtin_executors_are_registered() -> None:
    registry = default_executors(Settings(), entry_points=False)
    assert {"llm", "desktop", "human", "http", "template"} <= set(registry.names())
    assert all(registry.describe().values())
    with pytest.raises(KeyError, match="unknown executor 'nope'"):
        registry.get("nope")


def test_third_party_executors_plug_in_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shout_executor.py").write_text(
        "class Shout:\n"
        "    name = 'shout'\n"
        "    description = 'says it loudly'\n"
        "    receiver = None\n"
        "    async def __call__(self, call):\n"
        "        return call.todo.title.upper()\n"
        "def make(settings):\n"
        "    return Shout()\n"
    )
    dist = tmp_path / "shout_executor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-executor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cpa_planner.executors]\nshout = shout_executor:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = ExecutorRegistry()
    assert registry.load_entry_points(Settings()) == ["shout"]
    todo = ToDo(id="t1", title="hello", executor="shout")
    assert asyncio.run(registry.get("shout")(_call(todo, {}))) == "HELLO"
    sys.modules.pop("shout_executor", None)


def test_registry_refuses_what_is_not_an_executor() -> None:
    with pytest.raises(TypeError, match="not an executor"):
        ExecutorRegistry().register(object())  # type: ignore[arg-type]


async def test_template_executor_fills_request_and_dependencies() -> None:
    todo = ToDo(id="t2", title="t", executor="template")
    call = _call(todo, {"text": "{request} / {t1}", "dependencies": {"t1": "one"}})
    assert await TemplateExecutor()(call) == "the request / one"
    with pytest.raises(ExecutorError, match=r"\{t9\}"):
        await TemplateExecutor()(_call(todo, {"text": "{t9}", "dependencies": {}}))


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.example.com/v1/items", True),
        ("https://api.example.com/v1", True),
        ("https://api.example.com/v10", False),
        ("https://api.example.com.evil.net/v1", False),
        ("http://api.example.com/v1", False),
        ("https://api.example.com:8443/v1", False),
        ("file:///etc/passwd", False),
        ("https://other.example.com/v1", False),
    ],
)
def test_http_allow_list_compares_scheme_host_port_and_path(url: str, ok: bool) -> None:
    assert allowed(url, ("https://api.example.com/v1",)) is ok


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/api/moved":
            self.send_response(302)
            self.send_header("Location", "/admin")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200 if self.path.startswith("/api") else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_http_executor_calls_only_allowed_urls(local_http: str) -> None:
    settings = Settings(http_allowlist=f"{local_http}/api")
    todo = ToDo(id="t1", title="t", executor="http")
    out = await HttpExecutor()(_call(todo, {"url": f"{local_http}/api/x?q=1"}, settings))
    assert out == {"path": "/api/x?q=1"}
    with pytest.raises(ExecutorError) as refused:
        await HttpExecutor()(_call(todo, {"url": f"{local_http}/admin"}, settings))
    assert refused.value.code == "url_not_allowed" and not refused.value.retryable
    with pytest.raises(ExecutorError) as nothing_allowed:
        await HttpExecutor()(_call(todo, {"url": f"{local_http}/api/x"}, Settings()))
    assert nothing_allowed.value.code == "url_not_allowed"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        # Issue 10: the allow-list judged the text, httpx then sent `GET /admin`.
        ("https://api.example.com/v1/../admin", False),
        ("https://api.example.com/v1/%2e%2e/admin", False),
        ("https://api.example.com/v1/%2E%2E/v1x", False),
        ("https://api.example.com/v1/./items/../items", True),
        ("https://api.example.com/v1/%69tems", True),  # %69 is `i`
        ("https://API.Example.com:443/v1/items", True),  # the default port, written out
        ("https://api.example.com./v1/items", True),
        ("https://api.example.com/v1/..%2fadmin", False),  # an encoded `/`: refused
        ("https://api.example.com:+443/v1/items", False),
        ("https://user:pw@api.example.com/v1/items", True),
    ],
)
def test_http_allow_list_judges_the_url_the_server_reads(url: str, ok: bool) -> None:
    assert allowed(url, ("https://api.example.com/v1",)) is ok
    # An allow-list entry is read the same way.
    assert allowed(url, ("HTTPS://api.example.com:443/v1/",)) is ok


async def test_dot_segments_cannot_leave_the_allowed_prefix(local_http: str) -> None:
    settings = Settings(http_allowlist=f"{local_http}/api")
    todo = ToDo(id="t1", title="t", executor="http")
    for escape in ("/api/../admin", "/api/%2e%2e/admin", "/api/./x/../../admin"):
        with pytest.raises(ExecutorError) as refused:
            await HttpExecutor()(_call(todo, {"url": f"{local_http}{escape}"}, settings))
        assert refused.value.code == "url_not_allowed", escape
    # What is allowed is sent as checked: the server sees the resolved path.
    out = await HttpExecutor()(_call(todo, {"url": f"{local_http}/api/a/../%62"}, settings))
    assert out == {"path": "/api/b"}


@pytest.mark.parametrize("port", ["+18999", "0x50", "٨٠", "99999", "0", "-1"])
async def test_an_unusable_port_is_bad_input_not_a_crash(port: str) -> None:
    settings = Settings(http_allowlist="http://127.0.0.1:18999")
    todo = ToDo(id="t1", title="t", executor="http")
    with pytest.raises(ExecutorError) as bad:
        await HttpExecutor()(_call(todo, {"url": f"http://127.0.0.1:{port}/x"}, settings))
    assert bad.value.code == "bad_url" and not bad.value.retryable
    assert "port" in bad.value.message


async def test_a_redirect_is_a_failure_with_its_status(local_http: str) -> None:
    settings = Settings(http_allowlist=f"{local_http}/api")
    todo = ToDo(id="t1", title="t", executor="http")
    with pytest.raises(ExecutorError) as moved:
        await HttpExecutor()(_call(todo, {"url": f"{local_http}/api/moved"}, settings))
    assert moved.value.code == "http_redirect" and not moved.value.retryable
    assert "302" in moved.value.message and "/admin" in moved.value.message


async def test_http_errors_never_print_credentials(local_http: str) -> None:
    settings = Settings(http_allowlist="http://127.0.0.1:9/api")
    todo = ToDo(id="t1", title="t", executor="http")
    url = "http://bob:hunter2@127.0.0.1:9/admin?api_key=s3cr3t"
    with pytest.raises(ExecutorError) as refused:
        await HttpExecutor()(_call(todo, {"url": url}, settings))
    assert "hunter2" not in refused.value.message and "s3cr3t" not in refused.value.message
    assert "127.0.0.1:9/admin" in refused.value.message


async def test_http_server_errors_are_retryable(local_http: str) -> None:
    settings = Settings(http_allowlist=local_http)
    todo = ToDo(id="t1", title="t", executor="http")
    with pytest.raises(ExecutorError) as failed:
        await HttpExecutor()(_call(todo, {"url": f"{local_http}/down"}, settings))
    assert failed.value.code == "http_status" and failed.value.retryable


class _Slow:
    name = "slow"
    description = "sleeps too long the first time"
    receiver: str | None = None
    effect = "none"

    def __init__(self) -> None:
        self.attempts = 0

    async def __call__(self, call: ExecutorCall) -> Any:
        self.attempts += 1
        if self.attempts == 1:
            await asyncio.sleep(5)
        return f"attempt {call.attempt}"


async def test_timeout_then_retry_with_backoff() -> None:
    slow = _Slow()
    plan = {"goal": "g", "todos": [{"id": "t1", "title": "Slow", "executor": "slow"}]}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[slow],
        todo_timeout_s=0.2,
        todo_retries=1,
        todo_retry_backoff_s=0.01,
    )
    state = await Conversation(svc).start("Write an email to Tom with the agenda")
    result = Plan.model_validate(state["plan"])
    assert result.todo("t1").status == "done"
    assert result.todo("t1").output == "attempt 2"
    assert slow.attempts == 2


async def test_timeouts_exhausted_fail_the_todo() -> None:
    plan = {"goal": "g", "todos": [{"id": "t1", "title": "Slow", "executor": "always_slow"}]}
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    svc = services(
        models={"router": UncallableChatModel(), "planner": planner},
        executors=[_AlwaysSlow()],
        todo_timeout_s=0.05,
        todo_retries=1,
        max_replans=0,
    )
    state = await Conversation(svc).start("Write an email to Tom with the agenda")
    todo = Plan.model_validate(state["plan"]).todo("t1")
    assert todo.status == "failed"
    assert todo.error is not None and todo.error.startswith("timeout:")
    assert "after 2 attempts" in todo.error


class _AlwaysSlow:
    name = "always_slow"
    description = "never finishes in time"
    effect = "none"
    receiver: str | None = None
    effect = "none"

    async def __call__(self, call: ExecutorCall) -> Any:
        await asyncio.sleep(5)
