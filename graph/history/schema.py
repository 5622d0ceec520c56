"""The history database's schema: Alembic migrations, and the check the server starts with.

`upgrade(engine)` brings the schema to this version's head (`cpa-planner db upgrade`);
`check(engine)` says whether the server can use it: a database with none of our tables is new
and gets the schema at once (a fresh SQLite file needs no command); one at an older revision,
or at a revision this version does not know (a newer cpa-planner wrote it), is refused with a
`SchemaError` that names the command to run. Migrations are run on a connection we hand to
Alembic (its cookbook's "connection sharing"), so the async engines serve them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
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


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None, "the history has no migrations"
    return found


def _state(connection: Connection) -> tuple[SchemaState, str | None]:
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        ours = set(Base.metadata.tables) & set(inspect(connection).get_table_names())
        return ("unknown" if ours else "empty"), None
    if current == head():
        return "current", current
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    return ("old" if current in known else "unknown"), current


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str]:
    """Migrate to the head revision: (revision before, revision now)."""
    async with engine.begin() as connection:
        _, before = await connection.run_sync(_state)
        await connection.run_sync(_upgrade)
    return before, head()


async def check(engine: AsyncEngine, *, create: bool = True) -> None:
    """Raise SchemaError unless the schema is this version's; a new database gets it."""
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
