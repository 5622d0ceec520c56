"""What an attacker's probe of `cpa-planner serve` found, each reproduced and held fixed.

One test (or a few) per finding, named by what now holds (docs/security.md). The app runs
in this process on real Valkey (`tests.test_principals.served`), except where the finding is
about the real server process (timeouts: uvicorn on loopback).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import pytest
from a2a.server.jsonrpc_models import InternalError as RpcInternalError

from api.a2a.planner_agent import Dispatcher
from api.a2a.remote_tasks import RemoteTaskWatcher
from api.principals import PERSON_SCOPES, Principal
from api.settings import ServerSettings, digest
from graph.config import Settings
from graph.telemetry.logs import TextFormatter, known_secrets
from lam import MessageFactory
from nodes.executors.a2a import AgentConnection, AgentUnusableError
from tests.support.server_harness import (
    ACME_KEY,
    GLOBEX_KEY,
    ServerProcess,
    auth,
    delete_prefix,
    request_message,
    server_env,
)
from tests.test_principals import answer, post, served, waiting_propose

TENANTS = {digest(ACME_KEY): "acme", digest(GLOBEX_KEY): "globex"}
SECRET = "s3cr3t-pa55"
TOKEN = "t0k3n-v4lue"


# 1. Local mode: every router checks Host and Origin -------------------------------------


async def test_without_keys_the_console_views_check_host_and_origin(valkey_url: str) -> None:
    async with served(valkey_url, ServerSettings()) as (_, http):
        opened = await http.post("/v1/lam", json=request_message("Take a note: x"))
        cid = opened.json()["conversation_id"]
        paths = ["/v1/overview", f"/v1/conversations/{cid}/effects", "/v1/tools"]
        for path in paths:
            assert (await http.get(path)).status_code == 200, path
            rebound = await http.get(path, headers={"Host": "attacker.example"})
            assert rebound.status_code == 403, path
            assert rebound.json()["error"]["code"] == "local_only"
            page = await http.get(path, headers={"Origin": "https://attacker.example"})
            assert page.status_code == 403, path


# 2. Credentials in URLs never shown --------------------------------------------------------


class _Failing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_agent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_an_a2a_agents_url_credentials_stay_out_of_errors_and_logs(
    failing_agent: str,
) -> None:
    host = failing_agent.removeprefix("http://")
    url = f"http://bot:{SECRET}@{host}/?token={TOKEN}"
    with pytest.raises(AgentUnusableError) as failed:
        async with AgentConnection("helper", url, (failing_agent,), 5.0):
            pass
    shown = failed.value.message
    assert "helper" in shown
    assert SECRET not in shown and TOKEN not in shown, shown
    # The log's formatter: the configured agents' secrets, and any URL's credentials
    # (httpx's INFO line about a plan's HTTP step names its URL).
    secrets = known_secrets({"CPA_A2A_AGENTS": f"helper={url}"})
    assert SECRET in secrets and TOKEN in secrets
    line = f'HTTP Request: GET https://u:{SECRET}@api.example/x?key={TOKEN} "HTTP/1.1 200 OK"'
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, line, None, None)
    formatted = TextFormatter(secrets=[]).format(record)
    assert SECRET not in formatted and TOKEN not in formatted and "api.example" in formatted


def test_new_form_key_entries_are_masked_in_logs() -> None:
    secrets = known_secrets({"CPA_API_KEYS": f"tenant=home;principal=user:a;key={SECRET}"})
    assert SECRET in secrets


# 3. A run config cannot send the server's LLM key elsewhere -----------------------------


def test_a_run_config_pointing_the_llm_elsewhere_does_not_get_the_servers_key() -> None:
    server = Settings(llm_api_key="sk-server-key", llm_base_url="https://llm.internal/v1")
    moved = server.with_overrides({"llm_base_url": "https://attacker.example/v1"})
    assert moved.llm_base_url == "https://attacker.example/v1"
    assert moved.llm_api_key is None
    own = server.with_overrides({"llm_base_url": "https://other/v1", "llm_api_key": "sk-theirs"})
    assert own.llm_api_key == "sk-theirs"
    same = server.with_overrides({"llm_base_url": "https://llm.internal/v1", "max_todos": 5})
    assert same.llm_api_key == "sk-server-key"
    assert server.with_overrides({"ollama_host": "http://x:11434"}).llm_api_key is None


# 4. Per-tenant request rate and stored bytes --------------------------------------------


async def test_a_tenant_over_its_request_rate_gets_429_with_retry_after(valkey_url: str) -> None:
    config = ServerSettings(api_keys=TENANTS, rate_limit_per_min=4)
    async with served(valkey_url, config) as (_, http):
        if time.time() % 60 > 50:  # not across a minute's edge
            await asyncio.sleep(60.5 - time.time() % 60)
        propose = await waiting_propose(http, ACME_KEY, "user")  # 2 requests: POST, inbox
        assert (await http.get("/v1/conversations", headers=auth(ACME_KEY))).status_code == 200
        assert (await http.get("/v1/conversations", headers=auth(ACME_KEY))).status_code == 200
        limited = await http.get("/v1/conversations", headers=auth(ACME_KEY))
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # Answers let conversations finish: never limited. Another tenant has its own count.
        assert (await post(http, ACME_KEY, answer(propose, "user"))).status_code == 202
        assert (await http.get("/v1/conversations", headers=auth(GLOBEX_KEY))).status_code == 200


async def test_a_tenant_over_its_stored_bytes_gets_429_until_conversations_expire(
    valkey_url: str,
) -> None:
    config = ServerSettings(api_keys=TENANTS, max_stored_bytes_per_tenant=20_000)
    async with served(valkey_url, config, redis_ttl_s=2) as (app, http):
        big = "Take a note: " + "x" * 30_000
        first = await post(http, ACME_KEY, request_message(big))
        assert first.status_code == 202 and first.json()["status"] == "done", first.text
        stored, next_expiry = await app.state.replica.limits.stored("acme")
        assert stored > 30_000 and next_expiry is not None  # measured in Redis
        refused = await post(http, ACME_KEY, request_message("Take a note: small"))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "storage_quota"
        assert 1 <= int(refused.headers["Retry-After"]) <= 3
        # Another tenant is not charged for it.
        other = await post(http, GLOBEX_KEY, request_message("Take a note: mine"))
        assert other.status_code == 202
        await asyncio.sleep(2.5)  # the finished conversation expires: its bytes are free
        again = await post(http, ACME_KEY, request_message("Take a note: small"))
        assert again.status_code == 202, again.text


# 5. The remote-task watcher reads only what waits on a remote task ----------------------


async def test_the_remote_task_watcher_reads_only_conversations_waiting_on_a_remote_task(
    valkey_url: str,
) -> None:
    async with served(valkey_url, ServerSettings(api_keys=TENANTS)) as (app, http):
        replica = app.state.replica
        for n in range(3):  # waiting, but for the person: not the watcher's business
            await waiting_propose(http, ACME_KEY if n % 2 else GLOBEX_KEY, "user")
        read: list[str] = []
        inbox = replica.views.inbox

        async def counting(tenant: str, cid: str, receiver: str | None) -> Any:
            read.append(cid)
            return await inbox(tenant, cid, receiver)

        replica.views.inbox = counting
        assert await RemoteTaskWatcher(replica).waiting_assigns() == {}
        assert read == []
        # A conversation that waits on an A2A agent's task is indexed when its run stops.
        thread = "acme/c-remote"
        assign = {
            "id": "a1",
            "performative": "assign",
            "receiver": "a2a:helper",
            "metadata": {"a2a_task_id": "t"},
        }
        await replica.runs._note_remote_wait(thread, "waiting", [assign])
        assert await replica.redis.zrange(replica.keys.remote_waiting, 0, -1) == [thread.encode()]
        await replica.runs._note_remote_wait(thread, "waiting", [assign, {"in_reply_to": "a1"}])
        assert await replica.redis.zrange(replica.keys.remote_waiting, 0, -1) == []


# 6. and 12. A2A: task ids bound to their tenant; a reply returns promptly ------------------


async def rpc(http: httpx.AsyncClient, key: str, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": method, "params": params}
    response = await http.post("/a2a", json=body, headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def a2a_message(text: str, **ids: str) -> dict[str, Any]:
    return {
        "role": "user",
        "parts": [{"kind": "text", "text": text}],
        "messageId": str(uuid.uuid4()),
        "kind": "message",
        **ids,
    }


async def test_a2a_task_ids_cannot_be_forged_into_another_tenants_conversation(
    valkey_url: str,
) -> None:
    async with served(valkey_url, ServerSettings(api_keys=TENANTS)) as (_, http):
        sent = await rpc(
            http, ACME_KEY, "message/send", {"message": a2a_message("Remind me to call Anna")}
        )
        task = sent["result"]
        assert task["status"]["state"] == "input-required", sent
        # Globex names acme's task in a request of its own conversation with the same id.
        forged = (
            MessageFactory("user", task["contextId"])
            .request("Take a note: x", metadata={"a2a_task_id": task["id"]})
            .to_dict()
        )
        assert (await post(http, GLOBEX_KEY, forged)).status_code == 202
        got = await rpc(http, GLOBEX_KEY, "tasks/get", {"id": task["id"]})
        assert "error" in got and "result" not in got, got
        reply = await rpc(
            http,
            GLOBEX_KEY,
            "message/send",
            {"message": a2a_message("yes", taskId=task["id"], contextId=task["contextId"])},
        )
        assert "error" in reply, reply
        # Acme's task is untouched.
        mine = await rpc(http, ACME_KEY, "tasks/get", {"id": task["id"]})
        assert mine["result"]["status"]["state"] == "input-required"


async def test_an_a2a_reply_approving_a_plan_that_then_waits_for_the_desktop_returns_promptly(
    valkey_url: str,
) -> None:
    async with served(valkey_url, ServerSettings(api_keys=TENANTS)) as (_, http):
        sent = await rpc(
            http, ACME_KEY, "message/send", {"message": a2a_message("Remind me to call Anna")}
        )
        task = sent["result"]
        reply = (
            await asyncio.wait_for(  # a deadline: before, the call hung until the client gave up
                rpc(
                    http,
                    ACME_KEY,
                    "message/send",
                    {"message": a2a_message("yes", taskId=task["id"], contextId=task["contextId"])},
                ),
                timeout=25,
            )
        )
        assert reply["result"]["status"]["state"] == "working", reply
        inbox = (
            await http.get(
                f"/v1/conversations/{task['contextId']}/inbox",
                params={"receiver": "cpa-desktop"},
                headers=auth(ACME_KEY),
            )
        ).json()
        assert [m["performative"] for m in inbox] == ["assign"]


async def test_a2a_requests_are_sent_as_the_callers_principal(valkey_url: str) -> None:
    anna = "anna-a2a-key-0123456789"
    config = ServerSettings(
        api_keys={**TENANTS, digest(anna): Principal("acme", "user:anna", PERSON_SCOPES)}
    )
    async with served(valkey_url, config) as (_, http):
        sent = await rpc(
            http, anna, "message/send", {"message": a2a_message("Remind me to call Anna")}
        )
        task = sent["result"]
        assert task["status"]["state"] == "input-required", sent
        body = (await http.get(f"/v1/conversations/{task['contextId']}", headers=auth(anna))).json()
        request = body["messages"][0]
        assert request["sender"] == "user:anna"
        assert request["metadata"]["principal"] == "user:anna"
        assert request["metadata"]["a2a_task_id"] == task["id"]


# 7. /metrics: test_metrics_endpoint.py::test_with_keys_metrics_need_the_metrics_scope_or_loopback


# 8. /a2a: bad text is 4xx; errors say nothing of Redis --------------------------------------


async def test_a_lone_surrogate_in_a_json_rpc_id_is_422(valkey_url: str) -> None:
    async with served(valkey_url, ServerSettings(api_keys=TENANTS)) as (_, http):
        body = (
            b'{"jsonrpc": "2.0", "id": "\\ud800", "method": "tasks/get", "params": {"id": "a/b"}}'
        )
        response = await http.post(
            "/a2a",
            content=body,
            headers={**auth(ACME_KEY), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["fields"][0]["field"] == "id"


async def test_json_rpc_internal_errors_say_nothing_of_the_servers_insides(
    valkey_url: str,
) -> None:
    outage = RuntimeError("Error 111 connecting to redis-main.internal:6379. Connection refused.")
    async with served(valkey_url, ServerSettings(api_keys=TENANTS)) as (app, _):
        dispatcher = app.state.a2a.dispatcher
        assert isinstance(dispatcher, Dispatcher)
        # A2A 1.0 methods, and the 0.3 ones (their own adapter).
        answers: list[Any] = [dispatcher, dispatcher._v03_adapter]
        for answer in answers:
            for error in (outage, RpcInternalError(message=str(outage))):
                text = bytes(answer._generate_error_response(7, error).body).decode()
                assert "6379" not in text and "redis-main" not in text, text
                assert json.loads(text)["error"]["code"] == -32603


# 9. The agent card's URL -------------------------------------------------------------------


async def test_the_agent_cards_url_is_the_public_url_not_the_callers_host(
    valkey_url: str,
) -> None:
    config = ServerSettings(api_keys=TENANTS, public_url="https://planner.example.com/")
    async with served(valkey_url, config) as (_, http):
        card = await http.get(
            "/.well-known/agent-card.json",
            headers={**auth(ACME_KEY), "Host": "attacker.example"},
        )
        urls = {i["url"] for i in card.json()["supportedInterfaces"]}
        assert urls == {"https://planner.example.com/a2a"}


# 10. Expired conversations leave the checkpointer's thread registry --------------------------


async def test_expired_conversations_leave_the_thread_registry(valkey_url: str) -> None:
    async with served(valkey_url, ServerSettings(api_keys=TENANTS), redis_ttl_s=1) as (app, http):
        saver = app.state.replica.saver
        done = await post(http, ACME_KEY, request_message("Take a note: gone soon"))
        thread = f"acme/{done.json()['conversation_id']}"
        registry = f"{saver.prefix}:threads"
        assert await saver.client.sismember(registry, thread)
        await asyncio.sleep(1.5)
        assert await saver.aforget_gone_threads() >= 1
        assert not await saver.client.sismember(registry, thread)


# 11. Slow clients: header and body deadlines (a real server on loopback) ---------------------


@pytest.fixture
def slow_deadline_server(valkey_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = server_env(valkey_url, tmp_path, CPA_HEADER_TIMEOUT_S="1", CPA_BODY_TIMEOUT_S="1")
    proc = ServerProcess(env, tmp_path / "server.log", cli=True)
    proc.start(timeout=120)
    try:
        yield proc
    finally:
        proc.stop()
        delete_prefix(valkey_url, env["CPA_REDIS_PREFIX"])


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(1024):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_half_sent_requests_are_closed_after_the_header_deadline(
    slow_deadline_server: ServerProcess,
) -> None:
    port = slow_deadline_server.port
    sockets = []
    for n in range(40):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if n % 2:
            sock.sendall(b"GET /v1/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end
        sockets.append(sock)
    try:
        closed = [_closed_within(s, 8) for s in sockets]  # a deadline each, not a timing
        assert all(closed), f"{closed.count(False)} of {len(closed)} still open"
        # A body that does not arrive: 408, the connection is not held.
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(
            b"POST /v1/lam HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + ACME_KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        sock.settimeout(8)
        head = sock.recv(1024)
        assert head.startswith(b"HTTP/1.1 408"), head
        sock.close()
        # The server still serves.
        ok = httpx.get(f"{slow_deadline_server.url}/healthz", timeout=5)
        assert ok.status_code == 200
    finally:
        for sock in sockets:
            sock.close()
