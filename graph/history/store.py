"""The history's repository: one interface (`HistoryStore`), SQLite or PostgreSQL underneath.

    store = HistoryStore.open("sqlite:///…/history.db" | "postgresql://…")
    await store.check_schema()            # SchemaError: run `cpa-planner db upgrade`
    await store.archive([Appended(…), Stopped(…)])   # idempotent, any order, any replica
    page = await store.search(HistoryQuery(tenant="acme", status="failed"))
    record = await store.conversation("acme", "c-1")  # the whole record, or None
    await store.purge(settings)           # retention per tenant

SQLAlchemy 2 (Core, async) over aiosqlite (the default: a file, nothing to install) or asyncpg
(PostgreSQL, Supabase: its connection string works as given; `sslmode=` is passed on as
asyncpg's `ssl=`). The SQL is the same on both; only "insert or ignore" is each dialect's own.

`archive` stores a batch of the archive stream's entries in one transaction. Each message is
stored once per conversation (unique by message id: an entry delivered twice, after a crash
or by two replicas, adds nothing) at its place in the log (its index in the event log), so
the order read back is the log's whatever order entries were stored in. The conversation's row
is locked (`FOR UPDATE`; SQLite takes the database's write lock at `BEGIN IMMEDIATE`) before
its messages are added and its record is recomputed from all of them, so two archivers
storing entries of one conversation at once cannot leave a record that misses either's
messages; conversations are locked in one order (tenant, id), so two batches never deadlock.

Every string of a stored message has the secrets of this process masked, as log lines do
(`graph.telemetry.logs.known_secrets`, and the database URL's own password).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    delete,
    event,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from graph.envsettings import ConfigError
from graph.history.models import (
    HistoryApproval,
    HistoryConversation,
    HistoryMessage,
    HistoryTodo,
)
from graph.history.record import Stop, newer, principal_of, sent_at, summarize
from graph.history.schema import check, upgrade
from graph.history.settings import HistorySettings
from graph.redaction import MASK, redact_url, secrets_in

__all__ = [
    "Appended",
    "HistoryPage",
    "HistoryQuery",
    "HistoryStore",
    "Stopped",
    "database_url",
]

MAX_PAGE = 200
_C = cast(Table, HistoryConversation.__table__)
_M = cast(Table, HistoryMessage.__table__)
_T = cast(Table, HistoryTodo.__table__)
_A = cast(Table, HistoryApproval.__table__)


@dataclass(frozen=True)
class Appended:
    """Messages the conversation's log gained, the first at index `start`."""

    tenant: str
    conversation_id: str
    start: int
    messages: list[dict[str, Any]]


@dataclass(frozen=True)
class Stopped:
    """A run of the conversation stopped (`graph.history.record.Stop`)."""

    tenant: str
    conversation_id: str
    stop: Stop


Entry = Appended | Stopped


@dataclass(frozen=True)
class HistoryQuery:
    """A search: every filter given must hold. `tenant` None: every tenant (the CLI's own)."""

    tenant: str | None = None
    status: str | None = None
    intent: str | None = None
    executor: str | None = None  # a ToDo's executor or tool
    text: str | None = None  # in a request, the answer or an error (case-insensitive)
    since: datetime | None = None  # opened at or after
    until: datetime | None = None  # opened before
    cursor: str | None = None
    limit: int = 50


@dataclass
class HistoryPage:
    conversations: list[dict[str, Any]]
    next_cursor: str | None = None


def database_url(url: str) -> URL:
    """The SQLAlchemy URL of a history URL: `sqlite:///…` or `postgresql://…` (`postgres://`
    too), with the async driver; ConfigError for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"CPA_HISTORY_URL {redact_url(url)!r} is not a database URL "
            "(sqlite:///path or postgresql://user:password@host:port/database)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        query = dict(parsed.query)
        if "sslmode" in query:  # libpq's name (Supabase's strings), asyncpg's `ssl`
            query["ssl"] = query.pop("sslmode")
        return parsed.set(drivername="postgresql+asyncpg", query=query)
    raise ConfigError(
        f"CPA_HISTORY_URL: {backend!r} databases are not supported; use sqlite:///path or "
        "postgresql://user:password@host:port/database"
    )


def _sqlite_engine(url: URL, *, immediate: bool) -> AsyncEngine:
    """SQLite in WAL mode: readers go on while one writer writes; writers wait their turn
    (`BEGIN IMMEDIATE` takes the write lock up front: no lock upgrade that fails busy)."""
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _masker(secrets: Sequence[str]) -> Any:
    ordered = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(value: Any) -> Any:
        if not ordered:
            return value
        if isinstance(value, str):
            for secret in ordered:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        return value

    return mask


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with `Z`, microseconds always: the same text from both back ends."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _encode_cursor(created: datetime, pk: int) -> str:
    raw = json.dumps([iso(created), pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """ValueError for a cursor this store did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, pk = json.loads(raw)
        created = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        return created, int(pk)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise ValueError("not a cursor of this history (take next_cursor as given)") from None


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class HistoryStore:
    """The history in one SQL database (see the module's doc)."""

    def __init__(self, url: str, *, secrets: Iterable[str] = ()) -> None:
        self.url = database_url(url)
        self.shown = redact_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            self.writer = _sqlite_engine(self.url, immediate=True)
            self.reader = _sqlite_engine(self.url, immediate=False)
        else:
            self.writer = self.reader = create_async_engine(
                self.url, pool_size=5, max_overflow=5, pool_pre_ping=True
            )
        self._mask = _masker([*secrets, *secrets_in(url)])

    @classmethod
    def from_settings(
        cls, settings: HistorySettings, data_path: Path, *, secrets: Iterable[str] = ()
    ) -> HistoryStore:
        return cls(settings.url(data_path), secrets=secrets)

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()

    async def check_schema(self, *, create: bool = True) -> None:
        """SchemaError unless the schema is this version's (a new database gets it)."""
        await check(self.writer, create=create)

    async def upgrade(self) -> tuple[str | None, str]:
        return await upgrade(self.writer)

    # Writing ------------------------------------------------------------------------------

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    async def archive(self, entries: Sequence[Entry]) -> int:
        """Store a batch of the archive stream's entries in one transaction; the number of
        messages that were new.

        A handful of statements per batch, whatever its size: the conversations' rows
        (inserted if new, then locked in one order), all new messages, then every touched
        conversation's log read back, its record recomputed and written."""
        if not entries:
            return 0
        now = datetime.now(UTC)
        rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        stops: dict[tuple[str, str], Stop | None] = {}
        for entry in entries:
            key = (entry.tenant, entry.conversation_id)
            rows.setdefault(key, [])
            stops.setdefault(key, None)
            if isinstance(entry, Stopped):
                stops[key] = newer(stops[key], entry.stop)
                continue
            for offset, message in enumerate(entry.messages):
                body = self._mask(message)
                rows[key].append(
                    {  # ids, performatives and agents' names are LAM's plain text
                        "seq": entry.start + offset,
                        "message_id": str(body["id"]),
                        "performative": str(body["performative"]),
                        "sender": str(body["sender"]),
                        "receiver": str(body["receiver"]),
                        "principal": principal_of(body),
                        "sent_at": sent_at(body),
                        "archived_at": now,
                        "body": body,
                    }
                )
        keys = sorted(rows)
        async with self.writer.begin() as connection:
            await connection.execute(
                self._insert(_C).on_conflict_do_nothing(
                    index_elements=["tenant", "conversation_id"]
                ),
                [_new_conversation(key, rows[key], now) for key in keys],
            )
            found = (
                await connection.execute(
                    select(_C.c.id, _C.c.tenant, _C.c.conversation_id, _C.c.stop)
                    .where(tuple_(_C.c.tenant, _C.c.conversation_id).in_(keys))
                    .order_by(_C.c.tenant, _C.c.conversation_id)
                    .with_for_update()
                )
            ).all()
            pks = {(r.tenant, r.conversation_id): r.id for r in found}
            stored_stops = {r.id: Stop.from_json(r.stop) for r in found}
            messages = [{**row, "conversation_pk": pks[key]} for key in keys for row in rows[key]]
            stored = 0
            if messages:
                result = await connection.execute(
                    self._insert(_M)
                    .on_conflict_do_nothing(index_elements=["conversation_pk", "message_id"])
                    .returning(_M.c.id),
                    messages,
                )
                stored = len(result.all())
            logs: dict[int, list[Any]] = {pk: [] for pk in pks.values()}
            for pk, body in await connection.execute(
                select(_M.c.conversation_pk, _M.c.body)
                .where(_M.c.conversation_pk.in_(list(logs)))
                .order_by(_M.c.conversation_pk, _M.c.seq)
            ):
                logs[pk].append(body)
            updates, todos, approvals = [], [], []
            for key in keys:
                pk = pks[key]
                stop = newer(stored_stops[pk], stops[key])
                summary = summarize(logs[pk], stop)
                updates.append(_summary_values(pk, summary, stop, now))
                todos += [_plain({"conversation_pk": pk, **vars(t)}) for t in summary.todos]
                approvals += [_plain({"conversation_pk": pk, **vars(a)}) for a in summary.approvals]
            await connection.execute(_UPDATE_SUMMARY, updates)
            touched = list(logs)
            await connection.execute(delete(_T).where(_T.c.conversation_pk.in_(touched)))
            await connection.execute(delete(_A).where(_A.c.conversation_pk.in_(touched)))
            if todos:
                await connection.execute(_T.insert(), todos)
            if approvals:
                await connection.execute(_A.insert(), approvals)
        return stored

    # Reading ------------------------------------------------------------------------------

    def _filtered(self, query: HistoryQuery) -> Select[Any]:
        statement = select(_C)
        if query.tenant is not None:
            statement = statement.where(_C.c.tenant == query.tenant)
        if query.status:
            statement = statement.where(_C.c.status == query.status)
        if query.intent:
            statement = statement.where(_C.c.intent == query.intent)
        if query.executor:
            statement = statement.where(
                exists().where(
                    _T.c.conversation_pk == _C.c.id,
                    or_(_T.c.executor == query.executor, _T.c.tool == query.executor),
                )
            )
        if query.text:
            statement = statement.where(_C.c.search_text.like(_like(query.text), escape="\\"))
        if query.since is not None:
            statement = statement.where(_C.c.created_at >= query.since)
        if query.until is not None:
            statement = statement.where(_C.c.created_at < query.until)
        return statement

    async def search(self, query: HistoryQuery) -> HistoryPage:
        """Conversations that match, newest first, a page at a time (`next_cursor`).

        ValueError for a cursor this store did not write."""
        limit = max(1, min(query.limit, MAX_PAGE))
        statement = self._filtered(query)
        if query.cursor:
            created, pk = decode_cursor(query.cursor)
            statement = statement.where(
                or_(_C.c.created_at < created, and_(_C.c.created_at == created, _C.c.id < pk))
            )
        statement = statement.order_by(_C.c.created_at.desc(), _C.c.id.desc()).limit(limit + 1)
        async with self.reader.connect() as connection:
            rows = (await connection.execute(statement)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = _encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
        return HistoryPage([_summary(row) for row in rows], cursor)

    async def count(self, query: HistoryQuery) -> int:
        statement = select(func.count()).select_from(self._filtered(query).subquery())
        async with self.reader.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def conversation(self, tenant: str | None, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's whole record (summary, plans, ToDos, approvals, LAM log), or
        None. `tenant` None: the first of any tenant (the CLI's own reading)."""
        statement = select(_C).where(_C.c.conversation_id == conversation_id)
        if tenant is not None:
            statement = statement.where(_C.c.tenant == tenant)
        async with self.reader.connect() as connection:
            row = (await connection.execute(statement.order_by(_C.c.id).limit(1))).first()
            if row is None:
                return None
            return await _full(connection, row)

    async def export(self, query: HistoryQuery) -> AsyncIterator[dict[str, Any]]:
        """Every matching conversation's whole record, newest first, one at a time."""
        cursor = query.cursor
        while True:
            page = await self.search(
                HistoryQuery(**{**vars(query), "cursor": cursor, "limit": MAX_PAGE})
            )
            async with self.reader.connect() as connection:
                for item in page.conversations:
                    row = (
                        await connection.execute(
                            select(_C).where(
                                _C.c.tenant == item["tenant"],
                                _C.c.conversation_id == item["conversation_id"],
                            )
                        )
                    ).first()
                    if row is not None:
                        yield await _full(connection, row)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def messages(self, tenant: str, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's LAM log as archived, in order."""
        record = await self.conversation(tenant, conversation_id)
        return list(record["messages"]) if record else []

    # Retention ----------------------------------------------------------------------------

    async def purge(self, settings: HistorySettings, now: datetime | None = None) -> int:
        """Delete the conversations whose last message is older than their tenant's
        retention (CPA_HISTORY_RETENTION[_DAYS]); the number deleted."""
        now = now or datetime.now(UTC)
        doomed: list[Any] = []
        listed = sorted(settings.history_retention)
        if settings.history_retention_days > 0:
            cutoff = now - timedelta(days=settings.history_retention_days)
            doomed.append(and_(_C.c.updated_at < cutoff, _C.c.tenant.not_in(listed)))
        for tenant in listed:
            days = settings.history_retention[tenant]
            if days > 0:
                cutoff = now - timedelta(days=days)
                doomed.append(and_(_C.c.tenant == tenant, _C.c.updated_at < cutoff))
        if not doomed:
            return 0
        which = select(_C.c.id).where(or_(*doomed))
        async with self.writer.begin() as connection:
            pks = list((await connection.execute(which)).scalars())
            for start in range(0, len(pks), 500):
                chunk = pks[start : start + 500]
                for table in (_M, _T, _A):
                    await connection.execute(
                        delete(table).where(table.c.conversation_pk.in_(chunk))
                    )
                await connection.execute(delete(_C).where(_C.c.id.in_(chunk)))
        return len(pks)


_SUMMARY_FIELDS = (
    "principal",
    "created_at",
    "updated_at",
    "status",
    "stop",
    "request",
    "language",
    "intent",
    "tier",
    "route",
    "route_reason",
    "plan",
    "replans",
    "outcome",
    "error",
    "answer",
    "result",
    "turns",
    "message_count",
    "search_text",
)
# One statement for every conversation of a batch (executemany): bound names are `v_<column>`
# (a bound name may not be a column's).
_UPDATE_SUMMARY = (
    update(_C)
    .where(_C.c.id == bindparam("v_pk"))
    .values({name: bindparam(f"v_{name}", type_=_C.c[name].type) for name in _SUMMARY_FIELDS})
)


def _new_conversation(
    key: tuple[str, str], rows: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    first = min((r["sent_at"] for r in rows), default=now)
    return {
        "tenant": key[0],
        "conversation_id": key[1],
        "created_at": first,
        "updated_at": first,
        "status": "running",
        "request": "",
        "replans": 0,
        "turns": 0,
        "message_count": 0,
        "search_text": "",
    }


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """The row with NUL characters taken out of its text (PostgreSQL's text refuses them;
    the messages keep theirs, escaped in their JSON)."""
    return {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in row.items()}


def _summary_values(pk: int, summary: Any, stop: Stop | None, now: datetime) -> dict[str, Any]:
    values = {f"v_{name}": getattr(summary, name, None) for name in _SUMMARY_FIELDS}
    values["v_stop"] = stop.to_json() if stop else None
    values["v_created_at"] = summary.created_at or now
    values["v_updated_at"] = summary.updated_at or now
    return _plain({"v_pk": pk, **values})


def _summary(row: Any) -> dict[str, Any]:
    return {
        "conversation_id": row.conversation_id,
        "tenant": row.tenant,
        "principal": row.principal,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "status": row.status,
        "outcome": row.outcome,
        "request": row.request,
        "language": row.language,
        "intent": row.intent,
        "tier": row.tier,
        "route": row.route,
        "answer": row.answer,
        "turns": row.turns,
        "replans": row.replans,
        "messages": row.message_count,
    }


async def _full(connection: AsyncConnection, row: Any) -> dict[str, Any]:
    pk = row.id
    messages = [
        body
        for body in (
            await connection.execute(
                select(_M.c.body).where(_M.c.conversation_pk == pk).order_by(_M.c.seq)
            )
        ).scalars()
    ]
    todos = (
        await connection.execute(
            select(_T).where(_T.c.conversation_pk == pk).order_by(_T.c.todo_id)
        )
    ).all()
    approvals = (
        await connection.execute(
            select(_A).where(_A.c.conversation_pk == pk).order_by(_A.c.decided_at, _A.c.message_id)
        )
    ).all()
    plan_order = {str(t.get("id")): i for i, t in enumerate(((row.plan or {}).get("todos")) or [])}
    return {
        **_summary(row),
        "route_reason": row.route_reason,
        "plan": row.plan,
        "plans": [m["content"].get("plan") for m in messages if m.get("performative") == "propose"],
        "error": row.error,
        "result": row.result,
        "todos": [
            {
                "id": t.todo_id,
                "title": t.title,
                "executor": t.executor,
                "tool": t.tool,
                "status": t.status,
                "started_at": iso(t.started_at),
                "finished_at": iso(t.finished_at),
                "output": t.output,
                "error": t.error,
            }
            for t in sorted(todos, key=lambda t: (plan_order.get(t.todo_id, 1 << 30), t.todo_id))
        ],
        "approvals": [
            {
                "message_id": a.message_id,
                "decision": a.decision,
                "sender": a.sender,
                "principal": a.principal,
                "at": iso(a.decided_at),
                "propose_id": a.propose_id,
                "plan_digest": a.plan_digest,
                "reason": a.reason,
            }
            for a in approvals
        ],
        "messages": messages,
    }
