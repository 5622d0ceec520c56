"""The history database's schema: Alembic migrations, and the check the server starts with.

`upgrade(engine)` brings the schema to this version's head (`cpa-planner db upgrade`);
`check(engine)` says whether the server can use it: a database with none of our tables is new
and gets the schema at once (a fresh SQLite file needs no command); one at an older revision,
or at a revision this version does not know (a newer cpa-planner wrote it), is refused with a
`SchemaError` that names the command to run.

Migrations run on a connection we hand to Alembic, through its `EnvironmentContext` (no
env.py), so the async engines serve them too. Alembic reads its scripts from disk once, in a
worker thread (`load_scripts`), before any connection is made: on the event loop nothing waits
on a file (LangGraph's dev server refuses blocking calls there).
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any, Literal

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.history.models import Base

UPGRADE_COMMAND = "cpa-planner db upgrade"
MIGRATIONS = Path(__file__).parent / "migrations"

SchemaState = Literal["current", "empty", "old", "unknown"]


class SchemaError(RuntimeError):
    """The history database's schema is not the one this version uses."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache
def load_scripts() -> ScriptDirectory:
    """The migrations, read from disk (every revision's module loaded) once per process."""
    scripts = ScriptDirectory.from_config(alembic_config())
    scripts.get_current_head()  # builds the revision map: every script is read here
    return scripts


def head() -> str:
    found = load_scripts().get_current_head()
    assert found is not None, "the history has no migrations"
    return found


def _state(connection: Connection) -> tuple[SchemaState, str | None]:
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        ours = set(Base.metadata.tables) & set(inspect(connection).get_table_names())
        return ("unknown" if ours else "empty"), None
    if current == head():
        return "current", current
    known = {s.revision for s in load_scripts().walk_revisions()}
    return ("old" if current in known else "unknown"), current


def _upgrade(connection: Connection) -> None:
    scripts = load_scripts()

    def steps(revision: Any, _context: MigrationContext) -> Any:
        # What `alembic upgrade head` runs (Alembic's EnvironmentContext docs do the same).
        return scripts._upgrade_revs("head", revision)

    with EnvironmentContext(alembic_config(), scripts, fn=steps) as environment:
        environment.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,  # SQLite alters a table by copying it
            compare_type=True,
        )
        with environment.begin_transaction():
            environment.run_migrations()


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str]:
    """Migrate to the head revision: (revision before, revision now)."""
    await asyncio.to_thread(load_scripts)
    async with engine.begin() as connection:
        _, before = await connection.run_sync(_state)
        await connection.run_sync(_upgrade)
    return before, head()


async def check(engine: AsyncEngine, *, create: bool = True) -> None:
    """Raise SchemaError unless the schema is this version's; a new database gets it."""
    await asyncio.to_thread(load_scripts)
    async with engine.connect() as connection:
        state, current = await connection.run_sync(_state)
    if state == "current":
        return
    if state == "empty" and create:
        await upgrade(engine)
        return
    if state == "empty":
        raise SchemaError(f"the history database has no schema yet: run `{UPGRADE_COMMAND}`")
    if state == "old":
        raise SchemaError(
            f"the history database's schema is at revision {current}, this version needs "
            f"{head()}: run `{UPGRADE_COMMAND}`"
        )
    raise SchemaError(
        f"the history database's schema ({current or 'tables without a revision'}) is not one "
        f"this version knows (written by a newer cpa-planner?); this version needs {head()} "
        f"(`{UPGRADE_COMMAND}` migrates a database of an older version only)"
    )
