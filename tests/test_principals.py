"""Who is speaking: credentials bound to a person or an agent (docs/security.md).

The app runs in this process (ASGI transport) on real Valkey, with the test registry and
scripted models of `tests.server_harness`: "Remind me to ..." plans a desktop step, which
asks the person who made the request first.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.keystore import KeyStore
from api.principals import AGENT_SCOPES, ALL_SCOPES, PERSON_SCOPES, Principal, Scope
from api.settings import ServerConfigError, ServerSettings, digest
from graph.config import Settings
from lam import LAMMessage, MessageFactory
from server import create_app
from tests.support.cli_harness import clean_env, run_cli
from tests.support.server_harness import (
    DESKTOP,
    REGISTRY,
    ROOT,
    ServerProcess,
    auth,
    delete_prefix,
    done_for,
    request_message,
    server_env,
    server_services,
)

ANNA = "anna-key-0123456789"
BOB = "bob-key-0123456789"
DESK = "desk-key-0123456789"
BOSS = "boss-key-0123456789"
READER = "reader-key-0123456789"
OLD = "old-form-key-0123456789"

KEYS = {
    digest(ANNA): Principal("home", "user:anna", PERSON_SCOPES),
    digest(BOB): Principal("home", "user:bob", PERSON_SCOPES),
    digest(DESK): Principal("home", DESKTOP, AGENT_SCOPES),
    digest(BOSS): Principal("home", "user:boss", frozenset({Scope.APPROVE, Scope.READ})),
    digest(READER): Principal("home", "user:rita", frozenset({Scope.READ})),
    digest(OLD): Principal.tenant_wide("home"),
}


@asynccontextmanager
async def served(
    valkey_url: str, config: ServerSettings, *, keep: bool = False, **settings: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The server in this process on `valkey_url`; its keys deleted after, unless `keep`."""
    settings.setdefault("redis_prefix", f"test-principals-{uuid.uuid4().hex[:8]}")
    graph_settings = Settings(
        redis_url=valkey_url,
        intents_path=str(REGISTRY),
        todo_retries=0,
        **settings,
    )
    app = create_app(
        graph_settings, services=server_services(graph_settings), server_settings=config
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=30
            ) as http:
                yield app, http
    finally:
        if not keep:
            delete_prefix(valkey_url, graph_settings.redis_prefix)


@pytest.fixture
async def client(valkey_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with served(valkey_url, ServerSettings(api_keys=KEYS)) as (_, http):
        yield http


async def post(http: httpx.AsyncClient, key: str, message: Mapping[str, Any]) -> httpx.Response:
    return await http.post("/v1/lam", json=dict(message), headers=auth(key), params={"wait": 10})


async def waiting_propose(http: httpx.AsyncClient, key: str, sender: str) -> dict[str, Any]:
    """Open "Remind me to call Anna" as `sender`; the `propose` that then waits."""
    opened = await post(http, key, request_message("Remind me to call Anna", sender=sender))
    assert opened.status_code == 202, opened.text
    assert opened.json()["status"] == "waiting"
    cid = opened.json()["conversation_id"]
    inbox = (await http.get(f"/v1/conversations/{cid}/inbox", headers=auth(key))).json()
    (propose,) = inbox
    assert propose["performative"] == "propose" and propose["receiver"] == sender
    return dict(propose)


def answer(propose: Mapping[str, Any], sender: str, *, agree: bool = True) -> dict[str, Any]:
    asked = LAMMessage.from_dict(dict(propose))
    factory = MessageFactory(sender, asked.conversation_id)
    message = factory.agree(asked) if agree else factory.refuse(asked, "no")
    return message.to_dict()


async def status_of(http: httpx.AsyncClient, key: str, cid: str) -> str:
    body = (await http.get(f"/v1/conversations/{cid}", headers=auth(key))).json()
    return str(body["status"])


# The bars of "Done when" ---------------------------------------------------------------


async def test_a_desktop_agents_credential_cannot_approve(client: httpx.AsyncClient) -> None:
    propose = await waiting_propose(client, ANNA, "user:anna")
    cid = propose["conversation_id"]
    # As the person: its credential speaks as cpa-desktop only.
    forged = await post(client, DESK, answer(propose, "user:anna"))
    assert forged.status_code == 403, forged.text
    assert forged.json()["error"]["code"] == "wrong_sender"
    # As itself: the plan was proposed to anna, and it has no approve scope.
    own = await post(client, DESK, answer(propose, DESKTOP))
    assert own.status_code == 403, own.text
    # Nor can it open a conversation of its own to approve.
    opened = await post(client, DESK, request_message("Remind me to call Bob", sender=DESKTOP))
    assert opened.status_code == 403 and opened.json()["error"]["code"] == "forbidden"
    # Nothing was taken: the proposal still waits, and anna can still answer it.
    assert await status_of(client, ANNA, cid) == "waiting"
    inbox = (await client.get(f"/v1/conversations/{cid}/inbox", headers=auth(DESK))).json()
    assert [m["id"] for m in inbox] == [propose["id"]]


async def test_a_persons_key_cannot_answer_another_persons_proposal(
    client: httpx.AsyncClient,
) -> None:
    propose = await waiting_propose(client, ANNA, "user:anna")
    cid = propose["conversation_id"]
    as_bob = await post(client, BOB, answer(propose, "user:bob"))
    assert as_bob.status_code == 403, as_bob.text
    as_anna_by_bob = await post(client, BOB, answer(propose, "user:anna"))
    assert as_anna_by_bob.status_code == 403
    assert as_anna_by_bob.json()["error"]["code"] == "wrong_sender"
    assert await status_of(client, ANNA, cid) == "waiting"
    # Anna herself may; the log records who sent each message.
    agreed = await post(client, ANNA, answer(propose, "user:anna"))
    assert agreed.status_code == 202, agreed.text
    body = (await client.get(f"/v1/conversations/{cid}", headers=auth(ANNA))).json()
    sent = {m["performative"]: m for m in body["messages"] if m["sender"] == "user:anna"}
    assert sent["request"]["metadata"]["principal"] == "user:anna"
    assert sent["agree"]["metadata"]["principal"] == "user:anna"
    assert any(m["performative"] == "assign" for m in body["messages"])


async def test_an_approver_answers_for_the_person_the_plan_was_proposed_to(
    client: httpx.AsyncClient,
) -> None:
    propose = await waiting_propose(client, ANNA, "user:anna")
    cid = propose["conversation_id"]
    agreed = await post(client, BOSS, answer(propose, "user:boss"))
    assert agreed.status_code == 202, agreed.text
    body = (await client.get(f"/v1/conversations/{cid}", headers=auth(BOSS))).json()
    (agree,) = [m for m in body["messages"] if m["performative"] == "agree"]
    assert agree["sender"] == "user:boss"
    assert agree["metadata"] == {"principal": "user:boss", "approved_for": "user:anna"}
    assert any(m["performative"] == "assign" for m in body["messages"])  # the plan runs


async def test_a_desktop_agent_answers_only_its_own_assigns(client: httpx.AsyncClient) -> None:
    propose = await waiting_propose(client, ANNA, "user:anna")
    cid = propose["conversation_id"]
    assert (await post(client, ANNA, answer(propose, "user:anna"))).status_code == 202
    inbox = (await client.get(f"/v1/conversations/{cid}/inbox", headers=auth(DESK))).json()
    (assign,) = [m for m in inbox if m["performative"] == "assign"]
    # Anna cannot report the desktop's work done, not even as herself.
    as_anna = LAMMessage.from_dict(done_for(assign, "ok")).model_copy(
        update={"sender": "user:anna"}
    )
    refused = await post(client, ANNA, as_anna.to_dict())
    assert refused.status_code == 403, refused.text
    done = await post(client, DESK, done_for(assign, "called"))
    assert done.status_code == 202, done.text
    assert await status_of(client, ANNA, cid) == "done"


async def test_a_sender_mismatch_is_403_and_writes_nothing(client: httpx.AsyncClient) -> None:
    message = request_message("Take a note: buy milk", sender="user")
    refused = await post(client, ANNA, message)
    assert refused.status_code == 403
    assert refused.json()["error"]["fields"][0]["field"] == "sender"
    listed = (await client.get("/v1/conversations", headers=auth(ANNA))).json()
    assert listed["conversations"] == []
    # The id was not claimed: the corrected message (same id) is taken.
    fixed = await post(client, ANNA, {**message, "sender": "user:anna"})
    assert fixed.status_code == 202, fixed.text


async def test_scopes_limit_what_a_credential_may_do(client: httpx.AsyncClient) -> None:
    opened = await post(client, READER, request_message("Take a note: x", sender="user:rita"))
    assert opened.status_code == 403 and "scope request" in opened.json()["error"]["message"]
    assert (await client.get("/v1/conversations", headers=auth(READER))).status_code == 200
    assert (await client.get("/v1/conversations", headers=auth(BOSS))).status_code == 200


async def test_what_only_the_server_writes_in_metadata_is_replaced(
    client: httpx.AsyncClient,
) -> None:
    metadata = {"principal": "user:boss", "approved_for": "user:x", "a2a_task_id": "c/t", "k": "v"}
    message = request_message("Take a note: milk", sender="user:anna", metadata=metadata)
    opened = await post(client, ANNA, message)
    cid = opened.json()["conversation_id"]
    body = (await client.get(f"/v1/conversations/{cid}", headers=auth(ANNA))).json()
    assert body["messages"][0]["metadata"] == {"principal": "user:anna", "k": "v"}


async def test_the_old_key_form_is_tenant_wide(client: httpx.AsyncClient) -> None:
    """`tenant:key` keeps its meaning: any sender of the tenant, every scope."""
    propose = await waiting_propose(client, OLD, "user")
    body = (
        await client.get(f"/v1/conversations/{propose['conversation_id']}", headers=auth(OLD))
    ).json()
    assert body["messages"][0]["metadata"]["principal"] == "home:*"
    # The receiver rule still holds for it: the desktop's name cannot agree.
    assert (await post(client, OLD, answer(propose, DESKTOP))).status_code == 403
    assert (await post(client, OLD, answer(propose, "user"))).status_code == 202


# Settings ---------------------------------------------------------------------------------


def test_key_entries_name_a_principal_and_its_scopes() -> None:
    config = ServerSettings.from_env(
        {
            "CPA_API_KEYS": "tenant=home;principal=user:anna;scopes=request+approve;key=k-anna,"
            "tenant=home;principal=cpa-desktop;key=k-desk, home:k-old",
        }
    )
    assert config.api_keys[digest("k-anna")] == Principal(
        "home", "user:anna", frozenset({Scope.REQUEST, Scope.APPROVE})
    )
    assert config.api_keys[digest("k-desk")] == Principal("home", "cpa-desktop", PERSON_SCOPES)
    assert config.api_keys[digest("k-old")] == Principal("home", None, ALL_SCOPES)


@pytest.mark.parametrize(
    "entry",
    [
        "tenant=home;principal=user:anna;scopes=fly;key=sk-live-0123456789",
        "tenant=home;principal=user anna;key=sk-live-0123456789",
        "tenant=;key=sk-live-0123456789",
        "tenant=home;sk-live-0123456789",
        "tenant=home;key=sk-live-0123456789;key=sk-live-0123456789",
    ],
)
def test_a_bad_key_entry_says_which_and_never_prints_the_key(entry: str) -> None:
    with pytest.raises(ServerConfigError) as bad:
        ServerSettings.from_env({"CPA_API_KEYS": entry})
    assert "entry 1" in str(bad.value)
    assert "sk-live" not in str(bad.value) and "0123" not in str(bad.value)


# Managed keys ---------------------------------------------------------------------------


async def test_managed_keys_work_at_once_and_stop_when_revoked_or_expired(
    valkey_url: str,
) -> None:
    async with served(valkey_url, ServerSettings(managed_keys=True)) as (app, http):
        store: KeyStore = app.state.replica.keystore
        key, record = await store.create(Principal("home", "user:anna", PERSON_SCOPES))
        assert record.id in key and digest(key) not in str(await store.list())
        raw = await app.state.replica.redis.hgetall(store.keys_key)
        assert key.encode() not in b"".join([*raw.keys(), *raw.values()])  # hashed only
        opened = await post(http, key, request_message("Take a note: a", sender="user:anna"))
        assert opened.status_code == 202, opened.text
        assert (await http.get("/v1/conversations", headers=auth("cpa_nope_x"))).status_code == 401
        assert await store.revoke(record.id)
        assert (await http.get("/v1/conversations", headers=auth(key))).status_code == 401

        short, _ = await store.create(
            Principal("home", "user:bob", PERSON_SCOPES), expires_in_s=0.5
        )
        assert (await http.get("/v1/conversations", headers=auth(short))).status_code == 200
        await asyncio.sleep(0.7)
        expired = await http.get("/v1/conversations", headers=auth(short))
        assert expired.status_code == 401


async def keys_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`cpa-planner keys ARGS` in a subprocess (off the event loop)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", "keys", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_paired_desktop_agent_answers_but_cannot_approve(valkey_url: str) -> None:
    config = ServerSettings(managed_keys=True, api_keys={digest(ANNA): KEYS[digest(ANNA)]})
    async with served(valkey_url, config) as (app, http):
        prefix = app.state.replica.saver.prefix
        env = {
            **os.environ,
            "REDIS_URL": valkey_url,
            "CPA_REDIS_PREFIX": prefix,
            "LANGSMITH_TRACING": "false",
        }
        paired = await keys_cli(env, "pair-desktop", "--tenant", "home")
        assert paired.returncode == 0, paired.stderr
        lines = dict(line.split("=", 1) for line in paired.stdout.splitlines())
        desk = lines["CPA_API_KEY"]
        assert desk.startswith("cpa_") and "cannot approve" in paired.stderr
        listed = await keys_cli(env, "list", "--json")
        (entry,) = json.loads(listed.stdout)
        assert entry["principal"] == DESKTOP and entry["scopes"] == ["answer", "read"]
        assert desk not in listed.stdout

        propose = await waiting_propose(http, ANNA, "user:anna")
        assert (await post(http, desk, answer(propose, DESKTOP))).status_code == 403
        assert (await post(http, desk, answer(propose, "user:anna"))).status_code == 403
        assert (await post(http, ANNA, answer(propose, "user:anna"))).status_code == 202
        cid = propose["conversation_id"]
        inbox = (await http.get(f"/v1/conversations/{cid}/inbox", headers=auth(desk))).json()
        (assign,) = [m for m in inbox if m["performative"] == "assign"]
        assert (await post(http, desk, done_for(assign, "called"))).status_code == 202

        revoked = await keys_cli(env, "revoke", entry["id"])
        assert revoked.returncode == 0, revoked.stderr
        assert (await http.get("/v1/conversations", headers=auth(desk))).status_code == 401


def test_keys_create_refuses_bad_input_clearly(valkey_url: str) -> None:
    env = {**os.environ, "REDIS_URL": valkey_url, "CPA_REDIS_PREFIX": f"t-{time.time_ns()}"}
    bad = subprocess.run(
        [sys.executable, "-m", "cli", "keys", "create", "--tenant", "home", "--scopes", "fly"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 3 and "unknown scope" in bad.stderr and bad.stdout == ""


@pytest.mark.slow
def test_the_command_line_speaks_as_its_keys_person(valkey_url: str, tmp_path: Path) -> None:
    """`--server` with a person's key sends as that person (`GET /v1/principal`)."""
    env = server_env(
        valkey_url, tmp_path, CPA_API_KEYS=f"tenant=home;principal=user:anna;key={ANNA}"
    )
    server = ServerProcess(env, tmp_path / "server.log", cli=True)
    server.start(timeout=120)
    try:
        done = run_cli(
            ["run", "--server", server.url, "--api-key", ANNA, "--json", "-y", "Take a note: tea"],
            clean_env(tmp_path / "client"),
        )
        assert done.returncode == 0, done.stderr
        cid = json.loads(done.stdout)["conversation_id"]
        body = httpx.get(f"{server.url}/v1/conversations/{cid}", headers=auth(ANNA)).json()
        assert body["messages"][0]["sender"] == "user:anna"
        whoami = httpx.get(f"{server.url}/v1/principal", headers=auth(ANNA)).json()
        assert whoami == {
            "tenant": "home",
            "principal": "user:anna",
            "scopes": ["answer", "read", "request"],
        }
    finally:
        server.stop()
        delete_prefix(valkey_url, env["CPA_REDIS_PREFIX"])
