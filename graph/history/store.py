"""The history's repository: one interface (`HistoryStore`), SQLite or PostgreSQL underneath.

    store = HistoryStore("sqlite:///…/history.db" | "postgresql://…")
    await store.check_schema()            # SchemaError: run `cpa-planner db upgrade`
    await store.archive([Appended(…), Stopped(…)])   # idempotent, any order, any replica
    page = await store.search(HistoryQuery(tenant="acme", status="failed"))
    record = await store.conversation("acme", "c-1")  # the whole record, or None
    await store.purge(settings)           # retention per tenant

The store holds the connections and what they need (the engines, the secrets to mask); the
work is in one module per concern, each a set of functions over an engine:
`graph.history.engines` (URLs, SQLite's and PostgreSQL's engines), `graph.history.archive`
(writing: the archive stream's entries, retention), `graph.history.queries` (reading:
searches a page at a time, whole records, exports), `graph.history.schema` (migrations).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from graph.history import archive, queries
from graph.history.archive import Entry
from graph.history.engines import database_url, engines
from graph.history.queries import HistoryPage, HistoryQuery
from graph.history.schema import check, upgrade
from graph.history.settings import HistorySettings
from graph.redaction import redact_url, secrets_in


class HistoryStore:
    """The history in one SQL database (see the module's doc)."""

    def __init__(self, url: str, *, secrets: Iterable[str] = ()) -> None:
        self.url = database_url(url)
        self.shown = redact_url(url)
        self.dialect = self.url.get_backend_name()
        self.writer, self.reader = engines(self.url)
        self._mask = archive.masker([*secrets, *secrets_in(url)])

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

    # Writing (graph.history.archive) -----------------------------------------------------

    async def archive(self, entries: Sequence[Entry]) -> int:
        """Store a batch of the archive stream's entries in one transaction; the number of
        messages that were new (`graph.history.archive.archive`)."""
        return await archive.archive(self.writer, entries, self._mask)

    async def purge(self, settings: HistorySettings, now: datetime | None = None) -> int:
        """Delete the conversations whose last message is older than their tenant's
        retention (CPA_HISTORY_RETENTION[_DAYS]); the number deleted."""
        return await archive.purge(self.writer, settings, now)

    # Reading (graph.history.queries) -----------------------------------------------------

    async def search(self, query: HistoryQuery) -> HistoryPage:
        """Conversations that match, newest first, a page at a time (`next_cursor`).

        ValueError for a cursor this store did not write."""
        return await queries.search(self.reader, query)

    async def count(self, query: HistoryQuery) -> int:
        return await queries.count(self.reader, query)

    async def conversation(self, tenant: str | None, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's whole record (summary, plans, ToDos, approvals, LAM log), or
        None. `tenant` None: the first of any tenant (the CLI's own reading)."""
        return await queries.conversation(self.reader, tenant, conversation_id)

    def export(self, query: HistoryQuery) -> AsyncIterator[dict[str, Any]]:
        """Every matching conversation's whole record, newest first, one at a time."""
        return queries.export(self.reader, query)

    async def messages(self, tenant: str, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's LAM log as archived, in order."""
        record = await self.conversation(tenant, conversation_id)
        return list(record["messages"]) if record else []
