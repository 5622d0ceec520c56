"""The HTTP API against a real server: uvicorn in a subprocess, real Redis (Valkey)."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lam import LAMMessage, MessageFactory
from tests.support.server_harness import (
    ACME_KEY,
    DESKTOP,
    GLOBEX_KEY,
    ServerProcess,
    agree_to,
    approve_until_assigned,
    auth,
    delete_prefix,
    desktop_agent_polling,
    desktop_agent_sse,
    done_for,
    open_conversation,
    refuse,
    request_message,
    server_env,
    sse,
    wait_status,
)

pytestmark = pytest.mark.slow

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def server(valkey_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("server")
    env = server_env(
        valkey_url, directory, CPA_MAX_BODY_BYTES=str(MAX_BODY), CPA_SSE_KEEPALIVE_S="0.3"
    )
    process = ServerProcess(env, directory / "server.log")
    process.start()
    yield process
    process.stop()
    delete_prefix(valkey_url, env["CPA_REDIS_PREFIX"])


@pytest.fixture
async def acme(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=auth(ACME_KEY), timeout=30) as c:
        yield c


@pytest.fixture
async def globex(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=auth(GLOBEX_KEY), timeout=30) as c:
        yield c


def assert_intact_log(messages: list[dict[str, Any]], cid: str) -> None:
    """Every message valid LAM, ids unique, all in this conversation, one final answer."""
    for message in messages:
        LAMMessage.from_dict(message)
    ids = [m["id"] for m in messages]
    assert len(set(ids)) == len(ids)
    assert {m["conversation_id"] for m in messages} == {cid}
    assert messages[0]["performative"] == "request"
    assert messages[-1]["performative"] == "inform"
    assert messages[-1]["content"]["topic"] == "answer"


# Health, capabilities ------------------------------------------------------------------------


async def test_healthz_needs_no_key_readyz_does(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        response = await anonymous.get("/readyz")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    async with httpx.AsyncClient(base_url=server.url, headers=auth(ACME_KEY)) as client:
        assert (await client.get("/readyz")).json() == {"status": "ready", "redis": "ok"}


async def test_capabilities_is_an_offer(acme: httpx.AsyncClient) -> None:
    offer = (await acme.get("/v1/capabilities")).json()
    message = LAMMessage.from_dict(offer)
    assert message.performative.value == "offer"
    assert message.sender == "planner"
    assert {"desktop", "template", "work", "llm"} <= set(offer["content"]["executors"])
    assert offer["content"]["intents"] == ["note", "reminder", "meeting", "chore"]
    assert offer["content"]["lam_version"] == "1.0"


async def test_discover_is_answered_with_an_offer(acme: httpx.AsyncClient) -> None:
    discover = MessageFactory("cpa-desktop", "c-1").discover("planner").to_dict()
    response = await acme.post("/v1/lam", json=discover)
    assert response.status_code == 200
    assert response.json()["performative"] == "offer"
    assert response.json()["receiver"] == "cpa-desktop"


# Whole conversations with desktop agents -----------------------------------------------------


async def test_template_plan_without_desktop_finishes_with_wait(acme: httpx.AsyncClient) -> None:
    accepted = await open_conversation(acme, "Take a note: buy milk", wait=30)
    assert accepted["status"] == "done"
    conversation = accepted["conversation"]
    assert conversation["intent"] == "note"
    assert conversation["plan"]["todos"][0]["status"] == "done"
    assert conversation["plan"]["todos"][0]["output"] == "Noted: Take a note: buy milk"
    assert_intact_log(conversation["messages"], accepted["conversation_id"])
    assert conversation["messages"][0]["id"] == accepted["message_id"]


async def test_desktop_agent_polling_the_inbox(acme: httpx.AsyncClient) -> None:
    accepted = await open_conversation(acme, "Remind me to call Anna tomorrow at 9")
    cid = accepted["conversation_id"]

    final = await desktop_agent_polling(acme, cid)

    assert final["status"] == "done"
    assert final["intent"] == "reminder"
    todos = {t["id"]: t for t in final["plan"]["todos"]}
    assert todos["t2"]["status"] == "done" and todos["t2"]["output"] == "desktop did t2"
    assert_intact_log(final["messages"], cid)
    desktop = [m for m in final["messages"] if DESKTOP in (m["sender"], m["receiver"])]
    assert sorted(m["performative"] for m in desktop) == ["assign", "done"]
    assert (await acme.get(f"/v1/conversations/{cid}/inbox")).json() == []


async def test_desktop_agent_on_sse_with_a_reconnect(acme: httpx.AsyncClient) -> None:
    accepted = await open_conversation(acme, "Set up a meeting with Anna next week")
    cid = accepted["conversation_id"]
    # A person approves the plan (the propose waits for the requester, `user`).
    body = await wait_status(acme, cid, {"waiting"})
    (propose,) = (await acme.get(f"/v1/conversations/{cid}/inbox?receiver=user")).json()
    assert propose["performative"] == "propose" and body["status"] == "waiting"
    assert (await acme.post("/v1/lam", json=agree_to(propose))).status_code == 202

    received = await desktop_agent_sse(acme, cid, reconnect_after=4)

    final = (await acme.get(f"/v1/conversations/{cid}")).json()
    assert final["status"] == "done"
    assert all(t["status"] == "done" for t in final["plan"]["todos"])
    # The stream carried the whole log: no gap and no duplicate across the reconnect.
    # (Order: as the messages appeared. The graph's log puts a resumed desktop ToDo's
    # `assign` after its `done`, so the two orders differ there.)
    ids = [i for i, _ in received]
    assert len(ids) == len(set(ids))
    assert set(ids) == {m["id"] for m in final["messages"]}
    assert all(i == m["id"] for i, m in received)
    assert_intact_log(final["messages"], cid)


async def test_parallel_desktop_todos_wait_at_once_and_resume_separately(
    acme: httpx.AsyncClient,
) -> None:
    cid = (await open_conversation(acme, "Set up a meeting with Tom"))["conversation_id"]
    await wait_status(acme, cid, {"waiting"})
    (propose,) = (await acme.get(f"/v1/conversations/{cid}/inbox")).json()
    assert (await acme.post("/v1/lam", json=agree_to(propose))).status_code == 202

    inbox: list[dict[str, Any]] = []
    for _ in range(600):
        inbox = (await acme.get(f"/v1/conversations/{cid}/inbox?receiver={DESKTOP}")).json()
        if len(inbox) == 2:
            break
        await asyncio.sleep(0.05)
    assert sorted(m["content"]["todo"]["id"] for m in inbox) == ["t1", "t2"]
    # Answer t2 first; t1 still waits, then answer it.
    by_todo = {m["content"]["todo"]["id"]: m for m in inbox}
    assert (await acme.post("/v1/lam", json=done_for(by_todo["t2"], "theirs"))).status_code == 202
    assert (await acme.post("/v1/lam", json=done_for(by_todo["t1"], "mine"))).status_code == 202

    final = await desktop_agent_polling(acme, cid)
    todos = {t["id"]: t for t in final["plan"]["todos"]}
    assert (todos["t1"]["output"], todos["t2"]["output"]) == ("mine", "theirs")
    assert todos["t3"]["status"] == "done"
    assert_intact_log(final["messages"], cid)


async def test_refused_plan_runs_nothing(acme: httpx.AsyncClient) -> None:
    cid = (await open_conversation(acme, "Set up a meeting with Eve"))["conversation_id"]

    final = await desktop_agent_polling(acme, cid, approve=False)

    assert final["status"] == "done"
    assert final["result"] == {"refused": "not now"}
    kinds = [m["performative"] for m in final["messages"]]
    assert "refuse" in kinds and "assign" not in kinds and "done" not in kinds
    # Nothing will run them: skipped, as the command line shows them, not pending.
    assert {(t["status"], t["error"]) for t in final["plan"]["todos"]} == {
        ("skipped", "plan refused")
    }


# Answers: idempotency and conflicts -----------------------------------------------------------


async def _waiting_assign(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    """A reminder, approved (it changes the reminders app), waiting for the desktop agent."""
    cid = (await open_conversation(client, "Remind me to water the plants"))["conversation_id"]
    return cid, await approve_until_assigned(client, cid)


async def test_same_answer_twice_is_one_resume(acme: httpx.AsyncClient) -> None:
    cid, assign = await _waiting_assign(acme)
    answer = done_for(assign, "watered")

    first, second = await asyncio.gather(
        acme.post("/v1/lam", json=answer), acme.post("/v1/lam", json=answer)
    )
    third = await acme.post("/v1/lam", json=answer)

    assert first.status_code == second.status_code == third.status_code == 202
    ids = {(r.json()["conversation_id"], r.json()["message_id"]) for r in (first, second, third)}
    assert ids == {(cid, answer["id"])}
    assert third.headers.get("idempotent-replay") == "true"
    final = await wait_status(acme, cid, {"done", "failed"})
    assert final["status"] == "done"
    assert [m["performative"] for m in final["messages"]].count("done") == 2  # t1, t2
    # A replay after the end still gets the same answer, and changes nothing.
    assert (await acme.post("/v1/lam", json=answer)).status_code == 202
    assert (await acme.get(f"/v1/conversations/{cid}")).json()["messages"] == final["messages"]


async def test_same_request_twice_opens_one_conversation(acme: httpx.AsyncClient) -> None:
    request = request_message("Take a note: only once")
    first = (await acme.post("/v1/lam", json=request)).json()
    second = (await acme.post("/v1/lam", json=request)).json()
    assert first["conversation_id"] == second["conversation_id"]


async def test_reused_message_id_with_other_content_is_409(acme: httpx.AsyncClient) -> None:
    request = request_message("Take a note: first")
    assert (await acme.post("/v1/lam", json=request)).status_code == 202
    other = {**request, "content": {"text": "Take a note: second"}}
    response = await acme.post("/v1/lam", json=other)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "message_id_reused"


async def test_answer_to_nothing_waiting_is_409_and_changes_nothing(
    acme: httpx.AsyncClient,
) -> None:
    cid, assign = await _waiting_assign(acme)
    before = (await acme.get(f"/v1/conversations/{cid}")).json()

    stray = done_for({**assign, "id": str(uuid.uuid4())}, "nothing")
    response = await acme.post("/v1/lam", json=stray)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_waiting"
    assert (await acme.get(f"/v1/conversations/{cid}")).json() == before
    # A second, different answer to an assign already answered is refused too.
    assert (await acme.post("/v1/lam", json=done_for(assign, "ok"))).status_code == 202
    again = await acme.post("/v1/lam", json=done_for(assign, "twice"))
    assert again.status_code == 409
    final = await wait_status(acme, cid, {"done", "failed"})
    answers = [m for m in final["messages"] if m["in_reply_to"] == assign["id"]]
    assert [m["content"]["output"] for m in answers] == ["ok"]
    assert (await acme.post("/v1/lam", json=done_for(assign, "late"))).status_code == 409


async def test_wrong_kind_of_answer_is_422(acme: httpx.AsyncClient) -> None:
    cid, assign = await _waiting_assign(acme)
    agree = MessageFactory(DESKTOP, cid).agree(LAMMessage.from_dict(assign)).to_dict()
    response = await acme.post("/v1/lam", json=agree)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "performative"
    assert (await acme.get(f"/v1/conversations/{cid}")).json()["status"] == "waiting"


# Auth and tenants ----------------------------------------------------------------------------


async def test_missing_or_unknown_key_is_401(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        for headers in ({}, auth("wrong"), {"Authorization": "Basic abc"}):
            for method, path in [
                ("POST", "/v1/lam"),
                ("GET", "/v1/capabilities"),
                ("GET", "/v1/conversations/x"),
                ("GET", "/v1/conversations/x/events"),
            ]:
                response = await client.request(
                    method, path, headers=headers, json=request_message("Take a note: x")
                )
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"]["code"] == "unauthorized"


async def test_tenants_never_see_each_others_conversations(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    cid, assign = await _waiting_assign(acme)

    for path in ("", "/inbox", "/events"):
        response = await globex.get(f"/v1/conversations/{cid}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    stolen = await globex.post("/v1/lam", json=done_for(assign, "hijacked"))
    assert stolen.status_code == 404
    listed = (await globex.get("/v1/conversations")).json()["conversations"]
    assert cid not in {c["conversation_id"] for c in listed}
    assert cid in {
        c["conversation_id"] for c in (await acme.get("/v1/conversations")).json()["conversations"]
    }
    assert (await acme.get(f"/v1/conversations/{cid}")).json()["status"] == "waiting"


async def test_unknown_conversation_is_404(acme: httpx.AsyncClient) -> None:
    response = await acme.get("/v1/conversations/no-such-thing")
    assert response.status_code == 404
    assert "no-such-thing" in response.json()["error"]["message"]


# Bad input -----------------------------------------------------------------------------------


async def test_body_over_the_limit_is_413(acme: httpx.AsyncClient) -> None:
    big = request_message("Take a note: " + "x" * MAX_BODY)
    response = await acme.post("/v1/lam", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    streamed = await acme.post(
        "/v1/lam", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", ""),
        (b"[]", ""),
        (b'{"lam_version": "1.0", "performative": "request"}', "sender"),
        (
            b'{"lam_version": "2.0", "performative": "request", "sender": "u", "receiver": "p",'
            b' "content": {"text": "hi"}}',
            "lam_version",
        ),
        (
            b'{"lam_version": "1.0", "performative": "shout", "sender": "u", "receiver": "p",'
            b' "content": {}}',
            "performative",
        ),
        (
            b'{"lam_version": "1.0", "performative": "request", "sender": "u", "receiver": "p",'
            b' "content": {"txt": "hi"}}',
            "content.text",
        ),
        (
            b'{"lam_version": "1.0", "performative": "done", "sender": "u", "receiver": "p",'
            b' "conversation_id": "c", "content": {"todo_id": "t1", "output": 1}}',
            "in_reply_to",
        ),
        (
            b'{"lam_version": "1.0", "performative": "inform", "sender": "u", "receiver": "p",'
            b' "conversation_id": "c", "content": {"topic": "status"}}',
            "performative",
        ),
        (
            b'{"lam_version": "1.0", "performative": "failure", "sender": "u", "receiver": "p",'
            b' "conversation_id": "c", "content": {"error": {"code": "x", "message": "y"}}}',
            "in_reply_to",
        ),
    ],
)
async def test_invalid_messages_are_422_naming_the_field(
    acme: httpx.AsyncClient, body: bytes, field: str
) -> None:
    response = await acme.post(
        "/v1/lam", content=body, headers={"Content-Type": "application/json"}
    )
    if field == "in_reply_to" and b'"failure"' in body:
        # failure may omit in_reply_to in LAM; the planner needs it (and "c" is not ours).
        assert response.status_code in (404, 422)
        return
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert field in [f["field"] for f in error["fields"]]
    assert error["message"]


async def test_bad_query_parameters_are_422(acme: httpx.AsyncClient) -> None:
    response = await acme.post("/v1/lam?wait=-1", json=request_message("Take a note: q"))
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "query.wait"


# SSE -----------------------------------------------------------------------------------------


async def test_sse_keeps_alive_while_waiting_and_resumes_after_last_event_id(
    acme: httpx.AsyncClient,
) -> None:
    cid, assign = await _waiting_assign(acme)
    seen: list[str] = []
    comments = 0
    async for kind, value in sse(acme, cid):
        if kind == "message":
            seen.append(value[0])
        elif value == "keep-alive":
            comments += 1
            if comments == 2:
                break  # the client goes away; the server keeps nothing for it
    assert seen[-1] == assign["id"]
    # Reconnect after the third message: the rest follows, without the first three.
    rest: list[str] = []
    async for kind, value in sse(acme, cid, last_event_id=seen[2]):
        if kind == "message":
            rest.append(value[0])
            if value[0] == assign["id"]:
                break
    assert rest == seen[3:]
    await acme.post("/v1/lam", json=done_for(assign, "ok"))
    final = await wait_status(acme, cid, {"done"})
    # A finished conversation's stream replays everything after the id and then closes.
    tail = [v[0] async for k, v in sse(acme, cid, last_event_id=assign["id"]) if k == "message"]
    assert len(tail) == len(set(tail))
    assert set(tail) == {m["id"] for m in final["messages"]} - set(seen)


def _leave_mid_stream(server: ServerProcess, cid: str, after_bytes: int) -> None:
    """Ask for the stream, read a little of it, and leave abruptly (a reset, no goodbye)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"GET /v1/conversations/{cid}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {ACME_KEY}\r\n\r\n".encode()
        )
        sock.recv(after_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_clients_leaving_mid_stream_leave_no_error_in_the_log(
    server: ServerProcess, acme: httpx.AsyncClient
) -> None:
    cid, assign = await _waiting_assign(acme)
    await acme.post("/v1/lam", json=done_for(assign, "ok"))
    final = await wait_status(acme, cid, {"done"})
    server.log_watch.check()  # what came before is not this test's
    # A finished conversation's stream is one burst; leaving in its middle used to log an
    # unhandled BrokenResourceError about one time in five.
    for attempt in range(60):
        await asyncio.to_thread(_leave_mid_stream, server, cid, 200 + 50 * (attempt % 5))
    # The server still streams the whole log, and its log holds no error.
    tail = [v[1] async for k, v in sse(acme, cid) if k == "message"]
    assert [m["id"] for m in tail] == [m["id"] for m in final["messages"]]
    server.log_watch.check()


# Load ----------------------------------------------------------------------------------------


async def test_fifty_concurrent_conversations_complete(acme: httpx.AsyncClient) -> None:
    async def one(i: int) -> tuple[str, dict[str, Any]]:
        if i % 2:
            accepted = await open_conversation(acme, f"Take a note: item {i}", wait=60)
            cid = accepted["conversation_id"]
            return cid, await wait_status(acme, cid, {"done", "failed"}, within=120)
        accepted = await open_conversation(acme, f"Remind me to do thing {i}")
        cid = accepted["conversation_id"]
        return cid, await desktop_agent_polling(acme, cid, within=120)

    results = await asyncio.gather(*(one(i) for i in range(50)))

    assert len({cid for cid, _ in results}) == 50
    for cid, final in results:
        assert final["status"] == "done", final
        assert all(t["status"] == "done" for t in final["plan"]["todos"])
        assert_intact_log(final["messages"], cid)
        request_text = final["messages"][0]["content"]["text"]
        assert final["plan"]["goal"].endswith(request_text)


# Crash and resume ----------------------------------------------------------------------------


async def test_conversations_running_at_a_crash_resume_on_start(server: ServerProcess) -> None:
    markers = Path(server.env["CPA_TEST_MARKER_DIR"])
    async with httpx.AsyncClient(base_url=server.url, headers=auth(ACME_KEY), timeout=30) as c:
        cid = (await open_conversation(c, "Do the chore in the garden"))["conversation_id"]
        waiting_cid, assign = await _waiting_assign(c)
        marker = markers / f"{cid}.t1"
        for _ in range(600):
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        assert marker.exists(), server.log()
        assert (await c.get(f"/v1/conversations/{cid}")).json()["status"] == "running"

    server.kill()  # SIGKILL: no shutdown code runs
    server.start()

    async with httpx.AsyncClient(base_url=server.url, headers=auth(ACME_KEY), timeout=30) as c:
        final = await wait_status(c, cid, {"done", "failed"})
        assert final["status"] == "done", final
        assert marker.read_text().count("start") == 2  # t1 again (it never finished); once more
        assert (markers / f"{cid}.t2").read_text().count("start") == 1
        assert_intact_log(final["messages"], cid)
        # The conversation that was waiting still waits, and its answer still works.
        assert (await c.get(f"/v1/conversations/{waiting_cid}")).json()["status"] == "waiting"
        assert (await c.post("/v1/lam", json=done_for(assign, "after restart"))).status_code == 202
        assert (await wait_status(c, waiting_cid, {"done"}))["status"] == "done"


async def test_new_turn_in_a_finished_conversation(acme: httpx.AsyncClient) -> None:
    first = await open_conversation(acme, "Take a note: first turn", wait=30)
    cid = first["conversation_id"]
    follow_up = request_message("Take a note: second turn")
    follow_up["conversation_id"] = cid
    response = await acme.post("/v1/lam", json=follow_up, params={"wait": 30})
    assert response.status_code == 202, response.text
    conversation = response.json()["conversation"]
    assert conversation["status"] == "done"
    requests = [m for m in conversation["messages"] if m["performative"] == "request"]
    assert [r["content"]["text"] for r in requests] == [
        "Take a note: first turn",
        "Take a note: second turn",
    ]


async def test_request_to_a_busy_conversation_is_409(acme: httpx.AsyncClient) -> None:
    cid, _ = await _waiting_assign(acme)
    follow_up = request_message("Take a note: too early")
    follow_up["conversation_id"] = cid
    response = await acme.post("/v1/lam", json=follow_up)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conversation_busy"


def test_refusal_helpers_are_valid_lam() -> None:
    propose = MessageFactory("planner", "c").propose("user", {"goal": "g", "todos": []})
    LAMMessage.from_dict(refuse(propose.to_dict(), "no"))


async def test_where_a_run_stopped_is_recorded_once_and_dropped_by_new_work(
    server: ServerProcess, acme: httpx.AsyncClient
) -> None:
    """A reader of a waiting or finished conversation gets the body `finish` recorded (no
    rebuild from the checkpoints); an answer or a new turn drops it before anything runs."""
    import json

    import redis.asyncio as aioredis

    from graph.conversations import thread_id
    from graph.storage.server_keys import RedisKeys

    accepted = await open_conversation(acme, "Remind me to call Anna tomorrow at 9", wait=30)
    cid = accepted["conversation_id"]
    assert accepted["status"] == "waiting"
    key = RedisKeys(server.env["CPA_REDIS_PREFIX"]).conversation(thread_id(cid, "acme"))
    client = aioredis.from_url(server.env["REDIS_URL"])
    try:
        recorded = await client.hget(key, "view")
        assert recorded is not None
        assert json.loads(recorded) == accepted["conversation"]
        assert json.loads(recorded) == (await acme.get(f"/v1/conversations/{cid}")).json()

        # An answer: the recorded body is gone with the same step that accepts it.
        assign = await approve_until_assigned(acme, cid)
        answered = await acme.post("/v1/lam", json=done_for(assign, "called"), params={"wait": 30})
        assert answered.json()["status"] == "done"
        final = answered.json()["conversation"]
        assert json.loads(await client.hget(key, "view") or "null") == final
        assert final["plan"]["todos"][1]["output"] == "called"

        # A new turn: running, and nothing recorded, until it stops again.
        follow_up = request_message("Take a note: buy milk")
        follow_up["conversation_id"] = cid
        turn = await acme.post("/v1/lam", json=follow_up)
        assert turn.status_code == 202, turn.text
        status, view = await client.hmget(key, ["status", "view"])
        if status == b"running":
            assert view is None
        else:  # the short turn already stopped: what is recorded is the new turn's
            assert view is not None and json.loads(view) != final
        done = await wait_status(acme, cid, {"done"})
        assert len([m for m in done["messages"] if m["performative"] == "request"]) == 2
        assert json.loads(await client.hget(key, "view") or "null") == done
    finally:
        await client.aclose()
