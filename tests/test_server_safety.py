"""Safe by default (issue 10): one regression test per finding, black-box over HTTP.

Real servers (uvicorn subprocesses) on real Redis. Each test is the finding's repro, which
failed before the fix:

 1 ghosts            a finished conversation is gone after the TTL; every key has the TTL
 2 local mode        JSON bodies only; no keys: loopback Host/Origin/client, no public bind
 3 approval          only the propose's receiver may answer it
 4 ids               1-128 of [A-Za-z0-9._:-], 422 naming the field
 5 lone surrogates   422 naming the field; the conversation id stays free
 6 secrets           no password or key fragment in 503 bodies, logs, config errors
 8 tenants           the same id for two tenants; no existence oracle
 9 SSE fan-out       200 listeners on one conversation, one Redis subscription
10 limits            caps on running and waiting (429, Retry-After); waits expire
11 smaller           done for the wrong ToDo; a blank request; retries after a crash

(7, the http allow-list, is in tests/test_executors.py: it needs no server.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from api.idempotency import ResponseRecords
from api.settings import ServerConfigError, ServerSettings
from graph.storage.server_keys import RedisKeys
from lam import LAMMessage, MessageFactory
from tests.support.processes import RedisProcess, free_port
from tests.support.server_harness import (
    ACME_KEY,
    DESKTOP,
    GLOBEX_KEY,
    ROOT,
    ServerProcess,
    agree_to,
    approve_until_assigned,
    auth,
    delete_prefix,
    done_for,
    open_conversation,
    refuse,
    request_message,
    server_env,
    sse,
    wait_status,
)

pytestmark = pytest.mark.slow

INITECH_KEY = "initech-key-5555555555"
StartServer = Callable[..., ServerProcess]
THREE_TENANTS = f"acme:{ACME_KEY},globex:{GLOBEX_KEY},initech:{INITECH_KEY}"


@pytest.fixture(scope="module")
def start_server(valkey_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start a test server with extra settings; all are stopped at the end of the module."""
    started: list[tuple[ServerProcess, str]] = []

    def start(**extra: str) -> ServerProcess:
        directory = tmp_path_factory.mktemp("safety")
        env = server_env(valkey_url, directory, **extra)
        process = ServerProcess(env, directory / "server.log")
        process.start()
        started.append((process, env["CPA_REDIS_PREFIX"]))
        return process

    yield start
    for process, prefix in started:
        process.stop()
        delete_prefix(valkey_url, prefix)


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> ServerProcess:
    return start_server(CPA_REDIS_TTL_S="600", CPA_SSE_KEEPALIVE_S="2")


@pytest.fixture
async def acme(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=auth(ACME_KEY), timeout=30) as c:
        yield c


@pytest.fixture
async def globex(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=auth(GLOBEX_KEY), timeout=30) as c:
        yield c


def redis_of(server: ServerProcess) -> redis.Redis:
    return redis.from_url(server.env["REDIS_URL"], socket_timeout=10)


def keys_of(server: ServerProcess) -> RedisKeys:
    return RedisKeys(server.env["CPA_REDIS_PREFIX"])


async def post_raw(client: httpx.AsyncClient, body: str | bytes) -> httpx.Response:
    return await client.post("/v1/lam", content=body, headers={"Content-Type": "application/json"})


def raw_request(text: str = "Take a note: x", **fields: Any) -> str:
    """A request as JSON text, with fields set as written (escapes included)."""
    message = request_message(text)
    message.update(fields)
    return json.dumps(message)


# 1. Ghost conversations -------------------------------------------------------------------------


async def test_a_finished_conversation_is_gone_after_the_ttl(start_server: StartServer) -> None:
    short = start_server(CPA_REDIS_TTL_S="2")
    async with httpx.AsyncClient(base_url=short.url, headers=auth(ACME_KEY), timeout=30) as c:
        accepted = await open_conversation(c, "Take a note: hello", wait=5)
        assert accepted["status"] == "done"
        cid = accepted["conversation_id"]

        # Before the fix: `running` with one message, for good (the keys had no TTL).
        deadline = time.monotonic() + 60
        while (response := await c.get(f"/v1/conversations/{cid}")).status_code != 404:
            assert response.json()["status"] == "done", response.json()
            assert time.monotonic() < deadline, "the conversation never expired"
            await asyncio.sleep(0.2)
        assert (await c.get(f"/v1/conversations/{cid}/events")).status_code == 404
        # Gone as a whole: the id is free again.
        again = request_message("Take a note: hello again")
        again["conversation_id"] = cid
        assert (await c.post("/v1/lam", json=again, params={"wait": 5})).status_code == 202
        assert (await c.get(f"/v1/conversations/{cid}")).json()["status"] == "done"


async def _failed_conversation(client: httpx.AsyncClient) -> str:
    """A conversation that ends `failed`: the desktop agent reports its ToDo failed."""
    cid = str((await open_conversation(client, "Remind me to pay the rent"))["conversation_id"])
    assign = LAMMessage.from_dict(await approve_until_assigned(client, cid))
    failure = MessageFactory(DESKTOP, cid).failure(
        "planner", "app_closed", "the calendar app is closed", todo_id="t2", in_reply_to=assign.id
    )
    assert (await client.post("/v1/lam", json=failure.to_dict())).status_code == 202
    return cid


async def test_no_key_of_a_finished_conversation_is_left_without_a_ttl(
    server: ServerProcess, acme: httpx.AsyncClient
) -> None:
    done = (await open_conversation(acme, "Take a note: ttl", wait=10))["conversation_id"]
    refused = (await open_conversation(acme, "Set up a meeting with Ada"))["conversation_id"]
    await wait_status(acme, refused, {"waiting"})
    (propose,) = (await acme.get(f"/v1/conversations/{refused}/inbox")).json()
    assert (await acme.post("/v1/lam", json=refuse(propose, "no"))).status_code == 202
    failed = await _failed_conversation(acme)
    finals = {
        cid: (await wait_status(acme, cid, {"done", "failed"}))["status"]
        for cid in (done, refused, failed)
    }
    assert finals == {done: "done", refused: "done", failed: "failed"}

    client, keys = redis_of(server), keys_of(server)
    try:
        prefix = server.env["CPA_REDIS_PREFIX"]
        all_keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for cid in finals:
            thread = f"acme/{cid}"
            own = [k for k in all_keys if thread in k]
            assert len(own) >= 5, own  # the server's keys and the checkpoints'
            without = [k for k in own if client.ttl(k) < 0]
            assert without == [], f"keys of finished {cid} without a TTL: {without}"
            for index in keys.indexes():  # no shard of the global index holds it
                assert not client.sismember(index.running, thread)
                assert client.zscore(index.waiting, thread) is None
            assert not client.sismember(keys.tenant_running("acme"), thread)
    finally:
        client.close()


# 2. Local mode ------------------------------------------------------------------------------------


async def test_post_bodies_must_be_json(acme: httpx.AsyncClient) -> None:
    # What a browser sends cross-site without asking first: a "simple" text/plain POST.
    body = json.dumps(request_message("Delete all files in my Documents folder"))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        before = (await acme.get("/v1/conversations")).json()["conversations"]
        response = await acme.post("/v1/lam", content=body, headers=headers)
        assert response.status_code == 415, content_type
        assert response.json()["error"]["code"] == "unsupported_media_type"
        assert (await acme.get("/v1/conversations")).json()["conversations"] == before
    charset = await acme.post(
        "/v1/lam", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 202


@pytest.fixture(scope="module")
def local_server(start_server: StartServer) -> ServerProcess:
    return start_server(CPA_API_KEYS="")


async def test_without_keys_only_local_hosts_and_origins_are_served(
    local_server: ServerProcess,
) -> None:
    port = local_server.port
    body = request_message("Take a note: local")
    async with httpx.AsyncClient(base_url=local_server.url, timeout=30) as client:
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": "http://127.0.0.1.evil.example"},
            {"Host": "evil.example"},  # a DNS-rebinding page: its own name, our address
            {"Host": f"attacker.example:{port}"},
            {"Host": "127.0.0.2.nip.io"},
        ):
            response = await client.post("/v1/lam", json=body, headers=headers)
            assert response.status_code == 403, headers
            assert response.json()["error"]["code"] == "local_only"
            assert (await client.get("/v1/capabilities", headers=headers)).status_code == 403
        for headers in (
            {},
            {"Origin": f"http://localhost:{port}"},
            {"Origin": "http://127.0.0.1:5173"},
            {"Host": f"localhost:{port}"},
            {"Host": "[::1]"},
            {"Host": "127.0.0.5"},
        ):
            response = await client.post(
                "/v1/lam", json=request_message("Take a note: ok"), headers=headers
            )
            assert response.status_code == 202, (headers, response.text)
        listed = (await client.get("/v1/conversations")).json()["conversations"]
        assert len(listed) == 6  # only the accepted ones


async def test_without_keys_requests_from_other_machines_are_refused(valkey_url: str) -> None:
    # A server bound beyond loopback by other means (gunicorn, a socket handed over): each
    # request's client address is checked too. In process, to pose as another machine.
    from graph.config import Settings
    from server import create_app
    from tests.support.server_harness import server_services

    settings = Settings(redis_url=valkey_url, redis_prefix=f"test-local-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, services=server_services(settings), server_settings=ServerSettings())
    try:
        async with app.router.lifespan_context(app):
            for client_address, status in ((("192.0.2.7", 50000), 403), (("127.0.0.1", 5), 200)):
                transport = httpx.ASGITransport(app=app, client=client_address)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://localhost"
                ) as client:
                    response = await client.get("/v1/capabilities")
                    assert response.status_code == status, client_address
    finally:
        delete_prefix(valkey_url, settings.redis_prefix)


def _exits_refusing(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "uvicorn", "server:app", "--host", "0.0.0.0", "--port", "{port}"],
        [sys.executable, "server.py", "--host", "0.0.0.0", "--port", "{port}"],
        [sys.executable, "-m", "cli", "serve", "--host", "0.0.0.0", "--port", "{port}"],
        [sys.executable, "-m", "uvicorn", "server:app", "--host", "::", "--port", "{port}"],
    ],
    ids=["uvicorn", "server.py", "cpa-planner serve", "uvicorn-ipv6"],
)
def test_without_keys_no_way_of_starting_binds_beyond_loopback(
    command: list[str], valkey_url: str, tmp_path: Path
) -> None:
    port = str(free_port())
    env = {**os.environ, **server_env(valkey_url, tmp_path), "CPA_API_KEYS": ""}
    done = _exits_refusing([part.replace("{port}", port) for part in command], env)
    assert done.returncode != 0, done.stderr
    assert "no API keys configured" in done.stderr and "refusing to serve on" in done.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


# 3. Approval tied to the person ---------------------------------------------------------------


async def test_only_the_receiver_of_a_propose_may_answer_it(acme: httpx.AsyncClient) -> None:
    cid = (await open_conversation(acme, "Remind me to call the bank"))["conversation_id"]
    await wait_status(acme, cid, {"waiting"})
    (propose,) = (await acme.get(f"/v1/conversations/{cid}/inbox")).json()
    assert propose["performative"] == "propose" and propose["receiver"] == "user"
    as_desktop = MessageFactory(DESKTOP, cid).agree(LAMMessage.from_dict(propose)).to_dict()

    response = await acme.post("/v1/lam", json=as_desktop)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "not_the_receiver" and error["fields"][0]["field"] == "sender"
    assert (await acme.get(f"/v1/conversations/{cid}/inbox")).json() == [propose]
    assert (await acme.post("/v1/lam", json=agree_to(propose))).status_code == 202
    assert (await approve_until_assigned(acme, cid))["receiver"] == DESKTOP


# 4. Ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "x" * 10_000),
        ("id", "x" * 129),
        ("id", " "),
        ("id", "m1\n\nid: forged\ndata: {}"),
        ("conversation_id", "a b"),
        ("conversation_id", "c/../d"),
    ],
)
async def test_ids_outside_the_rule_are_422_naming_the_field(
    acme: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await post_raw(acme, raw_request(**{field: value}))
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field]


async def test_path_ids_follow_the_same_rule(acme: httpx.AsyncClient) -> None:
    for path in ("/v1/conversations/" + "x" * 129, "/v1/conversations/a%20b/events"):
        response = await acme.get(path)
        assert response.status_code == 422, path
        assert response.json()["error"]["fields"][0]["field"] == "path.conversation_id"


async def test_sse_frames_carry_each_message_id_as_its_id(acme: httpx.AsyncClient) -> None:
    cid = (await open_conversation(acme, "Take a note: frames", wait=10))["conversation_id"]
    frames = [value async for kind, value in sse(acme, cid) if kind == "message"]
    final = (await acme.get(f"/v1/conversations/{cid}")).json()
    assert [event_id for event_id, _ in frames] == [m["id"] for m in final["messages"]]
    assert all(message["id"] == event_id for event_id, message in frames)


# 5. Lone surrogates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"metadata": {"k": "\ud800"}}, "metadata.k"),
        ({"content": {"text": "Take a note: \udc00"}}, "content.text"),
        ({"metadata": {"\ud83d": "v"}}, "metadata"),
    ],
)
async def test_a_lone_surrogate_is_422_and_claims_nothing(
    acme: httpx.AsyncClient, fields: dict[str, Any], named: str
) -> None:
    cid = f"surrogate-{uuid.uuid4().hex[:8]}"
    response = await post_raw(acme, raw_request(conversation_id=cid, **fields))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert [f["field"] for f in error["fields"]] == [named]
    assert "unpaired surrogate" in error["message"]
    # Before the fix: a 500, and the id claimed but broken for good.
    assert (await acme.get(f"/v1/conversations/{cid}")).status_code == 404
    fine = request_message("Take a note: fine")
    fine["conversation_id"] = cid
    assert (await acme.post("/v1/lam", json=fine, params={"wait": 10})).status_code == 202
    assert (await acme.get(f"/v1/conversations/{cid}")).json()["status"] == "done"


async def test_a_lone_surrogate_in_done_output_is_422(acme: httpx.AsyncClient) -> None:
    cid = (await open_conversation(acme, "Remind me to call Anna"))["conversation_id"]
    assign = await approve_until_assigned(acme, cid)
    done = done_for(assign, "placeholder")
    done["content"]["output"] = {"files": ["report\ud800.txt"]}
    response = await post_raw(acme, json.dumps(done))
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "content.output.files.0"
    # The assign still waits, and a good answer still works.
    assert (await acme.get(f"/v1/conversations/{cid}/inbox")).json() == [assign]
    assert (await acme.post("/v1/lam", json=done_for(assign, "ok"))).status_code == 202
    assert (await wait_status(acme, cid, {"done"}))["status"] == "done"


# 6. Secrets ---------------------------------------------------------------------------------------


def test_a_redis_password_never_reaches_a_503_body_or_the_log(
    redis_server_bin: str, tmp_path: Path
) -> None:
    redis_server = RedisProcess(redis_server_bin, tmp_path / "redis")
    redis_server.start()
    # Redis 7 takes any password for the default user without one: a working URL with an
    # `@` inside the password.
    url = f"redis://default:hunter2@secret@127.0.0.1:{redis_server.port}/0"
    server = ServerProcess(
        server_env(url, tmp_path, CPA_REDIS_PREFIX=f"test-{uuid.uuid4().hex[:8]}"),
        tmp_path / "server.log",
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers=auth(ACME_KEY), timeout=30) as client:
            assert client.get("/readyz").status_code == 200
            redis_server.stop()
            for path in ("/readyz", "/v1/conversations/x", "/v1/conversations"):
                down = client.get(path)
                assert down.status_code == 503
                assert down.json()["error"]["code"] == "redis_unavailable"
                for secret in ("hunter2", "secret@", "127.0.0.1"):
                    assert secret not in down.text, (path, down.text)
    finally:
        server.stop()
        redis_server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "Redis at redis://default:***@127.0.0.1" in log
    assert "hunter2" not in log


@pytest.mark.parametrize(
    "keys",
    [
        "sk-live-0123456789abcdef",  # a key alone
        "sk-live/0123456789abcdef:acme",  # the key first, then the tenant
        "acme:,sk-live-0123456789abcdef",
        "acme:k1,sk-live-0123456789abcdef",
        "acme sk-live-0123456789abcdef:x",
    ],
)
def test_a_bad_api_keys_setting_never_prints_a_key(keys: str) -> None:
    with pytest.raises(ServerConfigError) as bad:
        ServerSettings.from_env({"CPA_API_KEYS": keys})
    message = str(bad.value)
    assert "CPA_API_KEYS" in message and "entry" in message
    for fragment in ("sk-live", "0123", "abcdef", "k1"):
        assert fragment not in message, message


def test_serve_with_bad_keys_prints_no_key(valkey_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **server_env(valkey_url, tmp_path),
        "CPA_API_KEYS": "sk-live-0123456789abcdef",
    }
    done = _exits_refusing([sys.executable, "-m", "cli", "serve", "--port", "1"], env)
    assert done.returncode != 0 and "CPA_API_KEYS" in done.stderr
    assert "sk-live" not in done.stderr + done.stdout and "0123" not in done.stderr


# 8. Tenant-scoped conversation ids ----------------------------------------------------------------


async def test_two_tenants_can_use_the_same_id(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    cid = f"shared-{uuid.uuid4().hex[:8]}"
    for client, text in ((acme, "Take a note: acme's"), (globex, "Take a note: globex's")):
        message = request_message(text)
        message["conversation_id"] = cid
        response = await client.post("/v1/lam", json=message, params={"wait": 10})
        assert response.status_code == 202, response.text
    mine = (await acme.get(f"/v1/conversations/{cid}")).json()
    theirs = (await globex.get(f"/v1/conversations/{cid}")).json()
    assert mine["messages"][0]["content"]["text"] == "Take a note: acme's"
    assert theirs["messages"][0]["content"]["text"] == "Take a note: globex's"
    assert all(m["conversation_id"] == cid for m in mine["messages"] + theirs["messages"])


async def test_no_tenant_learns_whether_another_has_an_id(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    taken = (await open_conversation(acme, "Remind me to feed the cat"))["conversation_id"]
    await wait_status(acme, taken, {"waiting"})
    never = f"never-{uuid.uuid4().hex[:8]}"
    for path in ("", "/inbox", "/events"):
        a = await globex.get(f"/v1/conversations/{taken}{path}")
        b = await globex.get(f"/v1/conversations/{never}{path}")
        assert (a.status_code, b.status_code) == (404, 404)
        assert a.json()["error"]["code"] == b.json()["error"]["code"] == "not_found"
    # Before the fix: 404 for a taken id (and 202 for a free one), and squatting.
    for cid in (taken, never):
        message = request_message("Take a note: mine")
        message["conversation_id"] = cid
        assert (await globex.post("/v1/lam", json=message)).status_code == 202
    assert (await acme.get(f"/v1/conversations/{taken}")).json()["status"] == "waiting"


# 9. SSE fan-out -----------------------------------------------------------------------------------


async def test_two_hundred_listeners_on_one_conversation_get_every_event(
    server: ServerProcess, acme: httpx.AsyncClient
) -> None:
    listeners = 200
    cid = (await open_conversation(acme, "Remind me to renew the passport"))["conversation_id"]
    await wait_status(acme, cid, {"waiting"})
    client = redis_of(server)
    pubsub_before = len(client.client_list(_type="pubsub"))
    limits = httpx.Limits(max_connections=listeners + 10, max_keepalive_connections=listeners)
    connected = asyncio.Event()
    idle_rounds = asyncio.Event()
    first_events = [0]
    comments = [0] * listeners

    async def listen(number: int) -> list[str]:
        ids: list[str] = []
        async for kind, value in sse(many, cid):
            if kind == "message":
                ids.append(value[0])
                if len(ids) == 1:
                    first_events[0] += 1
                    if first_events[0] == listeners:
                        connected.set()
            elif value == "keep-alive" and connected.is_set():
                comments[number] += 1
                if min(comments) >= 2:
                    idle_rounds.set()
        return ids

    async with httpx.AsyncClient(
        base_url=server.url, headers=auth(ACME_KEY), timeout=120, limits=limits
    ) as many:
        tasks = [asyncio.create_task(listen(n)) for n in range(listeners)]
        await asyncio.wait_for(connected.wait(), 120)
        # All of them listen: no subscription per listener, and while nothing happens
        # (two keep-alive rounds each) no Redis command per listener either.
        assert len(client.client_list(_type="pubsub")) == pubsub_before
        commands = int(client.info("stats")["total_commands_processed"])
        await asyncio.wait_for(idle_rounds.wait(), 120)
        idle_commands = int(client.info("stats")["total_commands_processed"]) - commands
        assert idle_commands < listeners, idle_commands  # polling would be >= 2 per listener

        assign = await approve_until_assigned(acme, cid)
        assert (await acme.post("/v1/lam", json=done_for(assign, "renewed"))).status_code == 202
        received = await asyncio.wait_for(asyncio.gather(*tasks), 120)
    client.close()

    final = (await acme.get(f"/v1/conversations/{cid}")).json()
    assert final["status"] == "done"
    every = {m["id"] for m in final["messages"]}
    for ids in received:
        assert len(ids) == len(set(ids)) and set(ids) == every


# 10. Limits ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(start_server: StartServer) -> ServerProcess:
    return start_server(
        CPA_API_KEYS=THREE_TENANTS,
        CPA_MAX_RUNNING_PER_TENANT="1",
        CPA_MAX_WAITING_PER_TENANT="1",
        CPA_RETRY_AFTER_S="7",
        CPA_WAIT_EXPIRY_S="3",
    )


async def test_a_tenant_at_its_cap_on_running_gets_429(limited: ServerProcess) -> None:
    async with (
        httpx.AsyncClient(base_url=limited.url, headers=auth(ACME_KEY), timeout=30) as acme,
        httpx.AsyncClient(base_url=limited.url, headers=auth(GLOBEX_KEY), timeout=30) as globex,
    ):
        # The chore's first ToDo blocks: it runs until the server stops.
        busy = (await open_conversation(acme, "Do the chore in the shed"))["conversation_id"]
        assert (await acme.get(f"/v1/conversations/{busy}")).json()["status"] == "running"

        response = await acme.post("/v1/lam", json=request_message("Take a note: one more"))

        assert response.status_code == 429
        assert response.json()["error"]["code"] == "too_many_running"
        assert response.headers["retry-after"] == "7"
        # Another tenant has its own cap.
        assert (await open_conversation(globex, "Take a note: mine", wait=10))["status"] == "done"


async def test_a_tenant_at_its_cap_on_waiting_gets_429_until_the_wait_expires(
    limited: ServerProcess,
) -> None:
    async with httpx.AsyncClient(
        base_url=limited.url, headers=auth(INITECH_KEY), timeout=30
    ) as initech:
        cid = (await open_conversation(initech, "Remind me to water the fern"))["conversation_id"]
        await wait_status(initech, cid, {"waiting"})
        (propose,) = (await initech.get(f"/v1/conversations/{cid}/inbox")).json()

        refused = await initech.post("/v1/lam", json=request_message("Remind me to call Bo"))

        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_waiting"
        assert 1 <= int(refused.headers["retry-after"]) <= 3
        # The wait expires: the conversation ends failed, `expired`, said in its log.
        final = await wait_status(initech, cid, {"failed"}, within=60)
        assert final["status"] == "failed"
        assert final["result"]["error"]["code"] == "expired"
        last = final["messages"][-1]
        assert last["performative"] == "failure" and last["content"]["error"]["code"] == "expired"
        assert (await initech.get(f"/v1/conversations/{cid}/inbox")).json() == []
        late = await initech.post("/v1/lam", json=agree_to(propose))
        assert late.status_code == 409
        tail = [v for k, v in [item async for item in sse(initech, cid)] if k == "message"]
        assert tail[-1][0] == last["id"]  # the stream ends with it
        # Room again.
        assert (
            await initech.post("/v1/lam", json=request_message("Remind me to call Bo"))
        ).status_code == 202


# 11. Smaller --------------------------------------------------------------------------------------


async def test_done_must_name_the_todo_its_assign_assigned(acme: httpx.AsyncClient) -> None:
    cid = (await open_conversation(acme, "Set up a meeting with Grace"))["conversation_id"]
    await approve_until_assigned(acme, cid)
    inbox: list[dict[str, Any]] = []
    for _ in range(600):
        inbox = (await acme.get(f"/v1/conversations/{cid}/inbox?receiver={DESKTOP}")).json()
        if len(inbox) == 2:
            break
        await asyncio.sleep(0.05)
    by_todo = {m["content"]["todo"]["id"]: m for m in inbox}
    assign_t1 = LAMMessage.from_dict(by_todo["t1"])
    wrong = MessageFactory(DESKTOP, cid).done(assign_t1, "booked", todo_id="t2").to_dict()

    response = await acme.post("/v1/lam", json=wrong)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "wrong_todo"
    body = (await acme.get(f"/v1/conversations/{cid}")).json()
    statuses = {t["id"]: t["status"] for t in body["plan"]["todos"]}
    assert statuses["t1"] == statuses["t2"] == "running"  # the log says nothing is done
    assert wrong["id"] not in {m["id"] for m in body["messages"]}


@pytest.mark.parametrize("blank", [" ", "\n\t ", "\u2003"])
async def test_a_blank_request_is_422_with_a_clear_message(
    acme: httpx.AsyncClient, blank: str
) -> None:
    response = await post_raw(acme, raw_request(content={"text": blank}))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["fields"] == [
        {"field": "content.text", "message": "the request is blank: say what you need"}
    ]
    assert "ValueError" not in response.text


async def test_a_retry_after_the_record_was_lost_gets_the_original_answer(
    server: ServerProcess, acme: httpx.AsyncClient
) -> None:
    # A crash between taking a message and recording the response loses the record; the
    # retry must get the original answer (before the fix: 409 for minutes).
    request = request_message("Remind me to check the tyres")
    first = (await acme.post("/v1/lam", json=request)).json()
    cid = first["conversation_id"]
    client, keys = redis_of(server), keys_of(server)
    try:
        client.delete(keys.message("acme", request["id"]))
        again = await acme.post("/v1/lam", json=request)
        assert again.status_code == 202, again.text
        assert (again.json()["conversation_id"], again.json()["message_id"]) == (
            cid,
            request["id"],
        )
        assign = await approve_until_assigned(acme, cid)
        answer = done_for(assign, "checked")
        assert (await acme.post("/v1/lam", json=answer)).status_code == 202
        client.delete(keys.message("acme", answer["id"]))
        assert (await acme.post("/v1/lam", json=answer)).status_code == 202
    finally:
        client.close()
    final = await wait_status(acme, cid, {"done"})
    assert [m["performative"] for m in final["messages"]].count("request") == 1
    assert [m["id"] for m in final["messages"]].count(answer["id"]) == 1


_CLAIMER = """
import asyncio, sys
import redis.asyncio as aioredis
from api.idempotency import ResponseRecords
from graph.storage.server_keys import RedisKeys
from lam import LAMMessage

async def main() -> None:
    client = aioredis.from_url(sys.argv[1])
    records = ResponseRecords(client, RedisKeys(sys.argv[2]), 600)
    message = LAMMessage.from_json(sys.argv[3])

    async def handle() -> dict:
        print("claimed", flush=True)
        await asyncio.sleep(3600)  # until killed
        return {}

    await records.once("acme", message, handle)

asyncio.run(main())
"""


def _claim_and_die(redis_url: str, prefix: str, message: LAMMessage) -> None:
    """A process claims the message, then is killed (SIGKILL) while handling it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLAIMER, redis_url, prefix, message.to_json()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "claimed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


async def test_a_claim_dies_with_the_process_that_made_it(valkey_url: str) -> None:
    import redis.asyncio as aioredis

    prefix = f"test-claim-{uuid.uuid4().hex[:8]}"
    message = MessageFactory("user").request("Take a note: claimed")
    await asyncio.to_thread(_claim_and_die, valkey_url, prefix, message)
    client = aioredis.from_url(valkey_url)
    try:
        records = ResponseRecords(client, RedisKeys(prefix), 600)

        async def handle() -> dict[str, Any]:
            return {"conversation_id": "c", "message_id": message.id}

        # Before the fix: 409 `in_progress` for 120 s. Now the claim lapses within seconds
        # and the retry is judged afresh (the replica then recognises what it had taken).
        body, replayed = await records.once("acme", message, handle)
        assert body == {"conversation_id": "c", "message_id": message.id} and not replayed
    finally:
        await client.aclose()
        delete_prefix(valkey_url, prefix)
