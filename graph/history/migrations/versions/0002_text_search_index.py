"""On PostgreSQL, a trigram index for the text filter (`text=`: LIKE '%…%').

pg_trgm ships with PostgreSQL (Debian's package, Supabase); where the extension cannot be
created (a role without the right), the filter still works, by a scan, and the migration goes
on. SQLite has no such index: its text filter scans the tenant's conversations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_history_conv_search_trgm"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        savepoint.commit()
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        logging.getLogger("cpa_planner.history").warning(
            "no pg_trgm (%s): the history's text filter will scan", exc.orig
        )
        return
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON history_conversations "
        "USING gin (search_text gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
