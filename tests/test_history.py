"""The history on both back ends for real: SQLite (a file) and PostgreSQL (a throwaway server).

The repository: the schema is exactly the models (Alembic's comparison finds nothing), an
unknown or missing schema is refused naming the command; entries stored twice, out of order,
in any batches, leave each message once at its place in the log; filters, cursor pages,
tenants, retention. The server, in process with real Redis: a conversation with an approval
and desktop ToDos is archived; after Redis forgot it, `GET /v1/history/{id}` still has its
whole log, equal to the LAM log the server showed; the same entries give identical records
from SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from api.settings import ServerSettings, digest
from graph.config import Settings
from graph.history.archive import Appended, Stopped
from graph.history.models import Base
from graph.history.queries import HistoryQuery
from graph.history.record import Stop, plan_digest
from graph.history.schema import SchemaError, head
from graph.history.settings import HistorySettings
from graph.history.store import HistoryStore
from server import create_app
from tests.support.history_harness import history_url, new_history_url, pg_server  # noqa: F401
from tests.support.server_harness import (
    ACME_KEY,
    GLOBEX_KEY,
    REGISTRY,
    auth,
    desktop_agent_polling,
    open_request,
    server_services,
)


@pytest.fixture
async def store(history_url: str) -> AsyncIterator[HistoryStore]:  # noqa: F811
    history = HistoryStore(history_url)
    await history.check_schema()
    yield history
    await history.close()


def message(cid: str, n: int, performative: str = "inform", **content: Any) -> dict[str, Any]:
    stamp = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    return {
        "lam_version": "1.0",
        "id": f"{cid}-m{n}",
        "performative": performative,
        "sender": "planner",
        "receiver": "user",
        "conversation_id": cid,
        "in_reply_to": None,
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reply_by": None,
        "content": content or {"topic": "status", "n": n},
        "metadata": {},
    }


def log_of(cid: str, size: int, text_: str = "Take a note: milk") -> list[dict[str, Any]]:
    request = message(cid, 0, "request", text=text_)
    request["sender"], request["receiver"] = "user", "planner"
    request["metadata"] = {"principal": "alice@example.com"}
    return [request, *(message(cid, n) for n in range(1, size))]


# The repository -----------------------------------------------------------------------


async def test_the_migrations_make_exactly_the_models(store: HistoryStore) -> None:
    async with store.writer.connect() as connection:

        def differences(sync: Any) -> list[Any]:
            # PostgreSQL's trigram index for the text filter is the migrations' own (0002).
            context = MigrationContext.configure(
                sync,
                opts={"include_object": lambda o, name, *_: name != "ix_history_conv_search_trgm"},
            )
            return list(compare_metadata(context, Base.metadata))

        assert await connection.run_sync(differences) == []
        revision = (
            await connection.execute(text("select version_num from alembic_version"))
        ).scalar()
    assert revision == head()


async def test_a_schema_it_does_not_know_is_refused_naming_the_command(
    history_url: str,  # noqa: F811
) -> None:
    history = HistoryStore(history_url)
    try:
        with pytest.raises(SchemaError, match="cpa-planner db upgrade"):
            await history.check_schema(create=False)  # empty: `db upgrade` first
        assert await history.upgrade() == (None, head())
        await history.check_schema(create=False)
        async with history.writer.begin() as connection:
            await connection.execute(text("update alembic_version set version_num = 'f00d'"))
        with pytest.raises(SchemaError, match="newer cpa-planner"):
            await history.check_schema()
    finally:
        await history.close()


async def test_each_message_is_stored_once_in_its_place_whatever_the_delivery(
    store: HistoryStore,
) -> None:
    cid = "c-1"
    log = log_of(cid, 12)
    first = Appended("acme", cid, 0, log[:5])
    second = Appended("acme", cid, 5, log[5:9])
    third = Appended("acme", cid, 9, log[9:])
    assert await store.archive([third, first]) == 8  # out of order
    assert await store.archive([first, second, second]) == 4  # again, and twice in a batch
    assert await store.archive([third]) == 0
    assert await store.messages("acme", cid) == log
    record = await store.conversation("acme", cid)
    assert record is not None
    assert record["messages"] == log and record["principal"] == "alice@example.com"
    assert record["status"] == "running" and record["created_at"] == log[0]["timestamp"]
    # A stop holds while no message came after it; an older stop archived late changes nothing.
    await store.archive([Stopped("acme", cid, Stop("20-0", "waiting", 12))])
    await store.archive([Stopped("acme", cid, Stop("10-0", "done", 9))])
    assert (await store.conversation("acme", cid) or {})["status"] == "waiting"
    await store.archive([Appended("acme", cid, 12, [message(cid, 12, "request", text="more")])])
    assert (await store.conversation("acme", cid) or {})["status"] == "running"


async def test_nul_characters_are_kept_in_messages_and_left_out_of_text_columns(
    store: HistoryStore,
) -> None:
    log = log_of("c-nul", 2, "Take a note:\x00 milk")
    assert await store.archive([Appended("acme", "c-nul", 0, log)]) == 2
    record = await store.conversation("acme", "c-nul")
    assert record is not None
    assert record["messages"] == log and record["request"] == "Take a note: milk"


async def test_two_archivers_storing_one_conversation_at_once_miss_nothing(
    history_url: str,  # noqa: F811
) -> None:
    stores = [HistoryStore(history_url), HistoryStore(history_url)]
    await stores[0].check_schema()
    try:
        cid = "c-race"
        log = log_of(cid, 60)
        chunks = [Appended("acme", cid, i, log[i : i + 3]) for i in range(0, 60, 3)]
        await asyncio.gather(*(stores[i % 2].archive([chunk]) for i, chunk in enumerate(chunks)))
        record = await stores[0].conversation("acme", cid)
        assert record is not None
        assert record["messages"] == log
        page = await stores[1].search(HistoryQuery(tenant="acme"))
        assert page.conversations[0]["messages"] == 60  # the summary saw every message
    finally:
        for history in stores:
            await history.close()


async def test_filters_pages_tenants_and_retention(store: HistoryStore) -> None:
    now = datetime.now(UTC)
    entries: list[Appended | Stopped] = []
    for n in range(7):
        cid = f"conv-{n}"
        log = log_of(cid, 2, f"Remind me about item {n}" if n % 2 else f"Note {n}: 50% off_x")
        opened = now - timedelta(days=n)
        for m in log:
            m["timestamp"] = opened.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        todo: dict[str, Any] = {"id": "t1", "title": "T", "executor": "desktop"}
        if n % 3 == 0:
            todo = {**todo, "executor": "tool", "tool": {"name": "find_files", "arguments": {}}}
        plan = {"goal": "g", "todos": [todo]}
        propose = message(cid, 5, "propose", plan=plan)
        propose["timestamp"] = log[0]["timestamp"]
        entries.append(Appended("acme" if n < 6 else "globex", cid, 0, [*log, propose]))
        status = "done" if n % 2 else "failed"
        entries.append(Stopped("acme" if n < 6 else "globex", cid, Stop(f"{n}-0", status, 3)))
    await store.archive(entries)

    async def ids(**filters: Any) -> list[str]:
        page = await store.search(HistoryQuery(tenant="acme", **filters))
        return [c["conversation_id"] for c in page.conversations]

    assert await ids() == [f"conv-{n}" for n in range(6)]  # newest first, acme's only
    assert await ids(status="done") == ["conv-1", "conv-3", "conv-5"]
    assert await ids(executor="desktop") == ["conv-1", "conv-2", "conv-4", "conv-5"]
    assert await ids(executor="find_files") == ["conv-0", "conv-3"]
    assert await ids(text="REMIND") == ["conv-1", "conv-3", "conv-5"]
    assert await ids(text="50%") == ["conv-0", "conv-2", "conv-4"]  # % is a character here
    assert await ids(text="of_") == []  # and so is _ ("off_x" has no "of_")
    assert await ids(since=now - timedelta(days=2, hours=1), until=now - timedelta(hours=1)) == [
        "conv-1",
        "conv-2",
    ]
    pages, cursor = [], None
    while True:
        page = await store.search(HistoryQuery(tenant="acme", limit=4, cursor=cursor))
        pages.append([c["conversation_id"] for c in page.conversations])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == [["conv-0", "conv-1", "conv-2", "conv-3"], ["conv-4", "conv-5"]]
    with pytest.raises(ValueError, match="cursor"):
        await store.search(HistoryQuery(tenant="acme", cursor="bogus"))
    assert await store.conversation("globex", "conv-0") is None  # another tenant's: none
    exported = [r["conversation_id"] async for r in store.export(HistoryQuery(tenant="acme"))]
    assert exported == [f"conv-{n}" for n in range(6)]

    # Retention: acme keeps 4 days, everyone else 1 (globex's conv-6 is 6 days old).
    settings = HistorySettings(history_retention_days=1, history_retention={"acme": 4})
    assert await store.purge(settings) == 3  # conv-4, conv-5 (acme), conv-6 (globex)
    assert await ids() == ["conv-0", "conv-1", "conv-2", "conv-3"]
    assert (await store.search(HistoryQuery(tenant="globex"))).conversations == []
    assert await store.purge(HistorySettings(history_retention_days=0)) == 0  # 0: kept


# The server ------------------------------------------------------------------------------


async def until(predicate: Any, within: float = 30.0) -> Any:
    """Poll an async predicate until it returns something truthy (a deadline, no timing)."""
    deadline = time.monotonic() + within
    while True:
        found = await predicate()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def archived(client: httpx.AsyncClient, cid: str, messages: int) -> dict[str, Any] | None:
    response = await client.get(f"/v1/history/{cid}")
    if response.status_code != 200:
        return None
    body = dict(response.json())
    done = body["status"] in ("done", "failed") and len(body["messages"]) >= messages
    return body if done else None


async def _empty(redis: Any, stream: str) -> bool:
    return int(await redis.xlen(stream)) == 0


async def test_a_conversation_is_read_back_whole_after_redis_forgot_it(
    valkey_url: str,
    history_url: str,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    prefix = f"test-hist-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis_url=valkey_url, redis_prefix=prefix, intents_path=str(REGISTRY), todo_retries=0
    )
    keys = {digest(ACME_KEY): "acme", digest(GLOBEX_KEY): "globex"}
    api = create_app(
        settings,
        services=server_services(settings),
        server_settings=ServerSettings(api_keys=keys),
        history_settings=HistorySettings(history_url=history_url),
    )
    redis = aioredis.from_url(valkey_url)
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api, client=("127.0.0.1", 5000))
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://t", headers=auth(ACME_KEY)
            ) as acme,
            httpx.AsyncClient(
                transport=transport, base_url="http://t", headers=auth(GLOBEX_KEY)
            ) as globex,
        ):
            cid = await open_request(acme, "Set up a meeting with the team on Friday")
            shown = await desktop_agent_polling(acme, cid)
            assert shown["status"] == "done"
            record = await until(lambda: archived(acme, cid, len(shown["messages"])))
            assert record is not None, "not archived within 30 s"
            stream = f"{prefix}:srv:archive"
            assert await until(lambda: _empty(redis, stream)), "the archive did not drain"

            # Redis forgets the conversation (its TTL, here at once).
            async for key in redis.scan_iter(match=f"{prefix}:*"):
                await redis.delete(key)
            assert (await acme.get(f"/v1/conversations/{cid}")).status_code == 404
            response = await acme.get(f"/v1/history/{cid}")
            assert response.status_code == 200
            record = response.json()
            assert record["messages"] == shown["messages"]  # the archive is the LAM log
            assert record["status"] == "done" and record["outcome"] == "done"
            assert record["result"] == shown["result"]  # where the run stopped
            assert record["intent"] == "meeting" and record["tier"] == "rules"
            assert record["route"] == "template" and record["language"] == "en"
            assert record["request"] == "Set up a meeting with the team on Friday"
            assert [t["status"] for t in record["todos"]] == ["done", "done", "done"]
            assert {t["executor"] for t in record["todos"]} == {"desktop"}
            assert all(t["started_at"] <= t["finished_at"] for t in record["todos"])
            (answer,) = [m for m in shown["messages"] if m["content"].get("topic") == "answer"]
            assert record["answer"] == answer["content"]["text"]
            (approval,) = record["approvals"]
            propose = next(m for m in shown["messages"] if m["performative"] == "propose")
            assert approval["decision"] == "agree" and approval["sender"] == "user"
            assert approval["propose_id"] == propose["id"]
            assert approval["plan_digest"] == plan_digest(propose["content"]["plan"])

            listed = (await acme.get("/v1/history", params={"executor": "desktop"})).json()
            assert [c["conversation_id"] for c in listed["conversations"]] == [cid]
            assert (await acme.get("/v1/history", params={"status": "failed"})).json()[
                "conversations"
            ] == []
            export = await acme.get("/v1/history/export", params={"text": "MEETING"})
            assert export.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in export.text.splitlines()]
            assert lines == [record]
            # Another tenant: nothing of it, not even that it exists.
            assert (await globex.get(f"/v1/history/{cid}")).status_code == 404
            assert (await globex.get("/v1/history")).json()["conversations"] == []
            bad = await acme.get("/v1/history", params={"status": "lost"})
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_filter"
            metrics = (await acme.get("/metrics")).text
            assert "cpa_history_backlog 0.0" in metrics

    await redis.aclose()
    # The same record from the other back end, given the same entries: identical.
    other = "postgres" if history_url.startswith("sqlite") else "sqlite"
    twin = HistoryStore(new_history_url(other, tmp_path, request))
    await twin.check_schema()
    try:
        await twin.archive(
            [
                Appended("acme", cid, 0, shown["messages"]),
                Stopped(
                    "acme",
                    cid,
                    Stop("1-0", "done", len(shown["messages"]), shown["plan"], shown["result"]),
                ),
            ]
        )
        assert await twin.conversation("acme", cid) == record
    finally:
        await twin.close()
