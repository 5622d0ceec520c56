"""The history over HTTP (docs/history.md), and its part in the server's life.

    GET /v1/history                    your conversations in the history, newest first:
                                       filters status, intent, executor (or tool), text,
                                       from/to (when opened); `cursor` pages on
    GET /v1/history/export             the same filters, every match's whole record as JSON
                                       lines (application/x-ndjson)
    GET /v1/history/{conversation_id}  one conversation's whole record: summary, plans,
                                       ToDos, approvals, LAM log (also long after Redis
                                       forgot it)

Tenant-scoped as every route: a tenant sees its own conversations only, another's id is 404.
404 `history_off` with CPA_HISTORY=false.

`open_history` is the lifespan's part: the store (its schema checked: the server refuses to
start on a schema it does not know, naming `cpa-planner db upgrade`) and this replica's
archiver (`api.archiver`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from api.archiver import Archiver
from api.auth import TenantDep
from api.dependencies import ConversationId
from api.errors import ApiError, error_responses, not_found, starting
from api.local_mode import local_only
from api.settings import replica_name
from graph.config import Settings
from graph.history.queries import MAX_PAGE, HistoryQuery
from graph.history.schema import SchemaError
from graph.history.settings import HistorySettings
from graph.history.store import HistoryStore
from graph.storage.server_keys import RedisKeys
from graph.telemetry.logs import known_secrets

logger = logging.getLogger("cpa_planner.server")
STATUSES = ("running", "waiting", "done", "failed")


@dataclass
class History:
    """The history as the server has it: the store, its settings, this replica's archiver."""

    store: HistoryStore
    settings: HistorySettings
    archiver: Archiver | None = None


@asynccontextmanager
async def open_history(
    settings: Settings, saver: Any, history: HistorySettings | None = None
) -> AsyncIterator[History | None]:
    """The history and its archiver while the server runs; None with CPA_HISTORY=false.

    Raises SchemaError (logged) when the database's schema is not this version's."""
    config = history or HistorySettings.from_env()
    if not config.history:
        yield None
        return
    # In a worker thread: making the SQLite file's folder and reading a keys file block.
    store = await asyncio.to_thread(
        lambda: HistoryStore.from_settings(config, settings.data_path, secrets=known_secrets())
    )
    try:
        try:
            await store.check_schema()
        except SchemaError as exc:
            logger.error("history at %s: %s", store.shown, exc)
            raise
        archiver = Archiver(
            saver.client, RedisKeys(saver.prefix), store, config, f"{replica_name()}:history"
        )
        await archiver.start()
        try:
            yield History(store, config, archiver)
        finally:
            await archiver.close()
    finally:
        await store.close()


def current_history(request: Request) -> History:
    if getattr(request.app.state, "replica", None) is None:
        raise starting()
    history = getattr(request.app.state, "history", None)
    if history is None:
        raise ApiError(404, "history_off", "the history is turned off (CPA_HISTORY=false)")
    assert isinstance(history, History)
    return history


HistoryDep = Annotated[History, Depends(current_history)]


class HistoryItem(BaseModel):
    conversation_id: str
    tenant: str
    principal: str | None = Field(description="who acted, where the request's metadata said")
    created_at: str = Field(description="its first message (RFC 3339, UTC)")
    updated_at: str = Field(description="its last message")
    status: str
    outcome: str | None = Field(description="done, refused, or the failure's code")
    request: str = Field(description="the latest turn's request text")
    language: str | None
    intent: str | None
    tier: str | None = Field(description="who decided the intent: rules, classifier, llm")
    route: str | None
    answer: str | None
    turns: int
    replans: int
    messages: int


class HistoryList(BaseModel):
    conversations: list[HistoryItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class Filters:
    """The filters of a search (`/v1/history` and its export; the CLI has the same)."""

    def __init__(
        self,
        status: Annotated[str | None, Query(description="running, waiting, done, failed")] = None,
        intent: Annotated[str | None, Query(max_length=64)] = None,
        executor: Annotated[
            str | None, Query(max_length=200, description="a ToDo's executor or tool")
        ] = None,
        text: Annotated[
            str | None,
            Query(max_length=200, description="in a request, the answer or an error"),
        ] = None,
        since: Annotated[
            AwareDatetime | None, Query(alias="from", description="opened at or after")
        ] = None,
        until: Annotated[
            AwareDatetime | None, Query(alias="to", description="opened before")
        ] = None,
    ) -> None:
        if status is not None and status not in STATUSES:
            raise ApiError(
                422,
                "invalid_filter",
                f"status must be one of {', '.join(STATUSES)}",
                [{"field": "status", "message": f"not {status!r}"}],
            )
        for name, value in (("intent", intent), ("executor", executor), ("text", text)):
            if value is not None and "\x00" in value:
                raise ApiError(
                    422,
                    "invalid_filter",
                    f"{name} holds a NUL character",
                    [{"field": name, "message": "no NUL characters"}],
                )
        self.status, self.intent, self.executor, self.text = status, intent, executor, text
        self.since: datetime | None = since
        self.until: datetime | None = until

    def query(self, tenant: str, cursor: str | None = None, limit: int = 50) -> HistoryQuery:
        return HistoryQuery(
            tenant=tenant,
            status=self.status,
            intent=self.intent,
            executor=self.executor,
            text=self.text,
            since=self.since,
            until=self.until,
            cursor=cursor,
            limit=limit,
        )


FiltersDep = Annotated[Filters, Depends()]
router = APIRouter(dependencies=[Depends(local_only)])


@router.get(
    "/v1/history",
    response_model=HistoryList,
    tags=["history"],
    responses=error_responses(401, 404, 422, 503),
)
async def list_history(
    history: HistoryDep,
    tenant: TenantDep,
    filters: FiltersDep,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> HistoryList:
    """Your conversations in the history, newest first, filtered; `next_cursor` pages on."""
    try:
        page = await history.store.search(filters.query(tenant, cursor, limit))
    except ValueError as exc:
        raise ApiError(
            422, "invalid_cursor", str(exc), [{"field": "cursor", "message": str(exc)}]
        ) from None
    return HistoryList.model_validate(
        {"conversations": page.conversations, "next_cursor": page.next_cursor}
    )


@router.get(
    "/v1/history/export",
    tags=["history"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "one record a line"},
        **error_responses(401, 404, 422, 503),
    },
)
async def export_history(
    history: HistoryDep, tenant: TenantDep, filters: FiltersDep
) -> StreamingResponse:
    """Every matching conversation's whole record, one JSON object a line, newest first."""

    async def lines() -> AsyncIterator[bytes]:
        async for record in history.store.export(filters.query(tenant)):
            yield json.dumps(record, ensure_ascii=False).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get(
    "/v1/history/{conversation_id}",
    response_model=dict[str, Any],
    tags=["history"],
    responses=error_responses(401, 404, 503),
)
async def get_history(
    conversation_id: ConversationId,
    history: HistoryDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """One conversation's whole record: summary, plans, ToDos, approvals, its LAM log."""
    record = await history.store.conversation(tenant, conversation_id)
    if record is None:
        raise not_found(conversation_id)
    return record
