"""The history's tables: conversations, their LAM messages, ToDos and approvals.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "history_conversations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stop", sa.JSON(), nullable=True),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("route", sa.String(length=32), nullable=True),
        sa.Column("route_reason", sa.Text(), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=True),
        sa.Column("replans", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "conversation_id", name="uq_history_conversation"),
    )
    with op.batch_alter_table("history_conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_history_conv_tenant_created", ["tenant", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_history_conv_tenant_intent", ["tenant", "intent", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_history_conv_tenant_status", ["tenant", "status", "created_at"], unique=False
        )
        batch_op.create_index("ix_history_conv_updated", ["updated_at"], unique=False)

    op.create_table(
        "history_approvals",
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("propose_id", sa.String(length=200), nullable=True),
        sa.Column("plan_digest", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_pk"], ["history_conversations.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("conversation_pk", "message_id"),
    )
    op.create_table(
        "history_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("performative", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("receiver", sa.String(length=200), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_pk"], ["history_conversations.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_pk", "message_id", name="uq_history_message"),
    )
    with op.batch_alter_table("history_messages", schema=None) as batch_op:
        batch_op.create_index("ix_history_msg_conv_seq", ["conversation_pk", "seq"], unique=False)

    op.create_table(
        "history_todos",
        sa.Column("conversation_pk", sa.Integer(), nullable=False),
        sa.Column("todo_id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(length=200), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_pk"], ["history_conversations.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("conversation_pk", "todo_id"),
    )
    with op.batch_alter_table("history_todos", schema=None) as batch_op:
        batch_op.create_index(
            "ix_history_todo_executor", ["executor", "conversation_pk"], unique=False
        )
        batch_op.create_index("ix_history_todo_tool", ["tool", "conversation_pk"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("history_todos", schema=None) as batch_op:
        batch_op.drop_index("ix_history_todo_tool")
        batch_op.drop_index("ix_history_todo_executor")

    op.drop_table("history_todos")
    with op.batch_alter_table("history_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_history_msg_conv_seq")

    op.drop_table("history_messages")
    op.drop_table("history_approvals")
    with op.batch_alter_table("history_conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_history_conv_updated")
        batch_op.drop_index("ix_history_conv_tenant_status")
        batch_op.drop_index("ix_history_conv_tenant_intent")
        batch_op.drop_index("ix_history_conv_tenant_created")

    op.drop_table("history_conversations")
