"""The history's database: a history URL as SQLAlchemy's, and the engines that reach it.

SQLAlchemy 2 (Core, async) over aiosqlite (the default: a file, nothing to install) or asyncpg
(PostgreSQL, Supabase: its connection string works as given; `sslmode=` is passed on as
asyncpg's `ssl=`). The SQL is the same on both; only "insert or ignore" is each dialect's own
(`graph.history.archive`).

SQLite gets two engines: a writer whose transactions take the write lock at `BEGIN IMMEDIATE`
and a reader whose do not, so reading goes on while one archiver writes. PostgreSQL gets one
pool for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from graph.envsettings import ConfigError
from graph.redaction import redact_url


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


def engines(url: URL) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) for a URL of `database_url`; the same engine twice on PostgreSQL."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
    return engine, engine


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
