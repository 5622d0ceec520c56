"""Reading the history: searches a page at a time, a conversation's whole record, exports.

A search (`HistoryQuery`) filters the conversations' rows and returns them newest first, a
page at a time (`HistoryPage`); its `next_cursor` is the last row's (created_at, id) as
opaque text, so a page follows the one before it whatever was archived in between. A
conversation's whole record adds its plans, ToDos, approvals and LAM log to its summary.
Times are RFC 3339 in UTC (`iso`), the same text from both back ends.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from graph.history.models import APPROVALS as _A
from graph.history.models import CONVERSATIONS as _C
from graph.history.models import MESSAGES as _M
from graph.history.models import TODOS as _T

MAX_PAGE = 200


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


def _filtered(query: HistoryQuery) -> Select[Any]:
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


async def search(engine: AsyncEngine, query: HistoryQuery) -> HistoryPage:
    """Conversations that match, newest first, a page at a time (`next_cursor`).

    ValueError for a cursor this store did not write."""
    limit = max(1, min(query.limit, MAX_PAGE))
    statement = _filtered(query)
    if query.cursor:
        created, pk = decode_cursor(query.cursor)
        statement = statement.where(
            or_(_C.c.created_at < created, and_(_C.c.created_at == created, _C.c.id < pk))
        )
    statement = statement.order_by(_C.c.created_at.desc(), _C.c.id.desc()).limit(limit + 1)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return HistoryPage([_summary(row) for row in rows], cursor)


async def count(engine: AsyncEngine, query: HistoryQuery) -> int:
    statement = select(func.count()).select_from(_filtered(query).subquery())
    async with engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())


async def conversation(
    engine: AsyncEngine, tenant: str | None, conversation_id: str
) -> dict[str, Any] | None:
    """The conversation's whole record (summary, plans, ToDos, approvals, LAM log), or
    None. `tenant` None: the first of any tenant (the CLI's own reading)."""
    statement = select(_C).where(_C.c.conversation_id == conversation_id)
    if tenant is not None:
        statement = statement.where(_C.c.tenant == tenant)
    async with engine.connect() as connection:
        row = (await connection.execute(statement.order_by(_C.c.id).limit(1))).first()
        if row is None:
            return None
        return await _full(connection, row)


async def export(engine: AsyncEngine, query: HistoryQuery) -> AsyncIterator[dict[str, Any]]:
    """Every matching conversation's whole record, newest first, one at a time."""
    cursor = query.cursor
    while True:
        page = await search(
            engine, HistoryQuery(**{**vars(query), "cursor": cursor, "limit": MAX_PAGE})
        )
        async with engine.connect() as connection:
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
