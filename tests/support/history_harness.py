"""The history's back ends for tests and the benchmark: SQLite files and a PostgreSQL server.

pg_server       (fixture, session) a throwaway PostgreSQL cluster (tests/support/postgres.py);
                skipped where PostgreSQL is not installed, a failure when CI=true
history_url     (fixture) parametrised "sqlite" (a file in the test's directory) and
                "postgres" (a new database on `pg_server`)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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
