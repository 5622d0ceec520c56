"""Alembic's environment for the history: migrations run on the connection we hand over
(`graph.history.schema`); offline SQL scripts are not supported."""

from __future__ import annotations

from alembic import context

from graph.history.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the history's migrations with `cpa-planner db upgrade`")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters a table by copying it
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
