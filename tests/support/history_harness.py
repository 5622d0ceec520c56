"""The history's back ends for tests and the benchmark: SQLite files and a PostgreSQL server.

pg_server       (fixture, session) a throwaway PostgreSQL cluster (tests/support/postgres.py);
                skipped where PostgreSQL is not installed, a failure when CI=true
history_url     (fixture) parametrised "sqlite" (a file in the test's directory) and
                "postgres" (a new database on `pg_server`)
lam_message     message n of conversation cid as the event log holds it (n = 0: the request)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import PostgresProcess


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresProcess]:
    server = PostgresProcess.find()
    if server is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL is required in CI (apt-get install postgresql)", pytrace=False)
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_history_url(backend: str, directory: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / f'history-{uuid.uuid4().hex[:8]}.db'}"
    server: PostgresProcess = request.getfixturevalue("pg_server")
    return server.create_database(f"h_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgres"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_history_url(request.param, tmp_path, request)


def lam_message(cid: str, n: int) -> dict[str, Any]:
    """Message n of conversation `cid` as the event log holds it (n = 0: the request)."""
    stamp = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=n)
    return {
        "lam_version": "1.0",
        "id": f"{cid}/{n}",
        "performative": "request" if n == 0 else "inform",
        "sender": "user" if n == 0 else "planner",
        "receiver": "planner" if n == 0 else "user",
        "conversation_id": cid,
        "in_reply_to": None,
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reply_by": None,
        "content": {"text": f"request {cid}"} if n == 0 else {"topic": "status", "n": n},
        "metadata": {},
    }
