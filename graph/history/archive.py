"""Writing the history: the archive stream's entries stored, old conversations purged.

`archive` stores a batch of the archive stream's entries in one transaction. Each message is
stored once per conversation (unique by message id: an entry delivered twice, after a crash
or by two replicas, adds nothing) at its place in the log (its index in the event log), so
the order read back is the log's whatever order entries were stored in. The conversation's row
is locked (`FOR UPDATE`; SQLite takes the database's write lock at `BEGIN IMMEDIATE`) before
its messages are added and its record is recomputed from all of them, so two archivers
storing entries of one conversation at once cannot leave a record that misses either's
messages; conversations are locked in one order (tenant, id), so two batches never deadlock.

Every string of a stored message has the secrets of this process masked, as log lines do
(`masker`; the store passes `graph.telemetry.logs.known_secrets` and the database URL's own
password).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.history.models import APPROVALS as _A
from graph.history.models import CONVERSATIONS as _C
from graph.history.models import MESSAGES as _M
from graph.history.models import TODOS as _T
from graph.history.record import Stop, newer, principal_of, sent_at, summarize
from graph.history.settings import HistorySettings
from graph.redaction import MASK

Masker = Callable[[Any], Any]


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


def masker(secrets: Sequence[str]) -> Masker:
    """A function that masks `secrets` in every string of a JSON value (shorter ones than
    four characters are not masked: they would mask ordinary words)."""
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


async def archive(engine: AsyncEngine, entries: Sequence[Entry], mask: Masker) -> int:
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
            body = mask(message)
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
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    async with engine.begin() as connection:
        await connection.execute(
            insert(_C).on_conflict_do_nothing(index_elements=["tenant", "conversation_id"]),
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
                insert(_M)
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


async def purge(engine: AsyncEngine, settings: HistorySettings, now: datetime | None = None) -> int:
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
    async with engine.begin() as connection:
        pks = list((await connection.execute(which)).scalars())
        for start in range(0, len(pks), 500):
            chunk = pks[start : start + 500]
            for table in (_M, _T, _A):
                await connection.execute(delete(table).where(table.c.conversation_pk.in_(chunk)))
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
