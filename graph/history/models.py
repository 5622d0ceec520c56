"""The history's tables (SQLAlchemy 2 declarative models), the same on SQLite and PostgreSQL.

One row per conversation (`HistoryConversation`: what a search filters on and a list shows),
its LAM messages (`HistoryMessage`, unique by message id within the conversation: storing one
twice is a no-op), its ToDos (`HistoryTodo`) and the approvals and refusals of its plans
(`HistoryApproval`). ToDos and approvals are recomputed from the messages whenever the
conversation's messages change (`graph.history.record`); the messages are the record.

Times are kept as naive UTC (`UtcDateTime`) and read back as aware UTC datetimes, so both back
ends return the same values. On PostgreSQL a trigram index serves the text filter (migration
0002: not a model's, as SQLite has none). The schema is created and changed by Alembic only
(`graph/history/migrations`, `cpa-planner db upgrade`): a change here needs a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ID_CHARS = 200  # LAM ids (`lam.text.MAX_ID_CHARS`) and agent names fit


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC instant: stored naive (SQLite keeps no zone), read back aware (UTC)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime: give the history UTC instants")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(parsed, datetime)
        return parsed.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, Any: JSON}


class HistoryConversation(Base):
    """One conversation of one tenant: the fields a search filters on, and its summary."""

    __tablename__ = "history_conversations"
    __table_args__ = (
        UniqueConstraint("tenant", "conversation_id", name="uq_history_conversation"),
        # The list and every filter run per tenant, newest first (the cursor's order).
        Index("ix_history_conv_tenant_created", "tenant", "created_at", "id"),
        Index("ix_history_conv_tenant_status", "tenant", "status", "created_at"),
        Index("ix_history_conv_tenant_intent", "tenant", "intent", "created_at"),
        Index("ix_history_conv_updated", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(String(ID_CHARS))
    principal: Mapped[str | None] = mapped_column(String(ID_CHARS), nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="running")
    # The newest stop of a run the archive has seen (`graph.history.record.Stop`): its
    # status holds while no message came after it.
    stop: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    request: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    route: Mapped[str | None] = mapped_column(String(32), nullable=True)
    route_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    replans: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    # Lower-cased request texts, answer and errors: what `text=` searches.
    search_text: Mapped[str] = mapped_column(Text, default="")


class HistoryMessage(Base):
    """One LAM message as the conversation's log has it (secrets masked)."""

    __tablename__ = "history_messages"
    __table_args__ = (
        UniqueConstraint("conversation_pk", "message_id", name="uq_history_message"),
        Index("ix_history_msg_conv_seq", "conversation_pk", "seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("history_conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)  # its place in the conversation's log
    message_id: Mapped[str] = mapped_column(String(ID_CHARS))
    performative: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(ID_CHARS))
    receiver: Mapped[str] = mapped_column(String(ID_CHARS))
    principal: Mapped[str | None] = mapped_column(String(ID_CHARS), nullable=True)
    sent_at: Mapped[datetime]
    archived_at: Mapped[datetime]
    body: Mapped[Any] = mapped_column(JSON)


class HistoryTodo(Base):
    """One ToDo of the conversation's latest plan: who ran it, how it went, when."""

    __tablename__ = "history_todos"
    __table_args__ = (
        Index("ix_history_todo_executor", "executor", "conversation_pk"),
        Index("ix_history_todo_tool", "tool", "conversation_pk"),
    )

    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("history_conversations.id", ondelete="CASCADE"), primary_key=True
    )
    todo_id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    executor: Mapped[str] = mapped_column(String(ID_CHARS))
    tool: Mapped[str | None] = mapped_column(String(ID_CHARS), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    output: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class HistoryApproval(Base):
    """An `agree` or `refuse` of a proposed plan: who, when, and the digest of that plan."""

    __tablename__ = "history_approvals"

    conversation_pk: Mapped[int] = mapped_column(
        ForeignKey("history_conversations.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))  # agree, refuse
    sender: Mapped[str] = mapped_column(String(ID_CHARS))
    principal: Mapped[str | None] = mapped_column(String(ID_CHARS), nullable=True)
    decided_at: Mapped[datetime]
    propose_id: Mapped[str | None] = mapped_column(String(ID_CHARS), nullable=True)
    plan_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


# The tables as SQLAlchemy Core sees them: the store's statements are Core's (a batch of rows
# per statement), not the ORM's.
CONVERSATIONS = cast(Table, HistoryConversation.__table__)
MESSAGES = cast(Table, HistoryMessage.__table__)
TODOS = cast(Table, HistoryTodo.__table__)
APPROVALS = cast(Table, HistoryApproval.__table__)
