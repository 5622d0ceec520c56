"""FastAPI dependencies the routes share: this replica's parts, a conversation id, a body.

The caller's principal and tenant are `api.auth`'s; this module has the rest:

    ReplicaDep        the app's `Replica` (`api.replica`), set by the lifespan (503 before
                      and after)
    ConversationId    a path's conversation id, held to the LAM id rule (`lam.text`)
    require_json      a POST body must be JSON (415 otherwise)
    read_body         the body, within a size limit (413) and a time limit (408)
"""

from __future__ import annotations

import asyncio
from typing import Annotated, cast

from fastapi import Depends, Request
from pydantic import Field

from api.errors import ApiError, starting
from api.replica import Replica
from lam.text import ID_PATTERN, MAX_ID_CHARS


def current_replica(request: Request) -> Replica:
    """The app's replica, set by its lifespan (503 before and after)."""
    replica = getattr(request.app.state, "replica", None)
    if replica is None:
        raise starting()
    return cast(Replica, replica)


ReplicaDep = Annotated[Replica, Depends(current_replica)]
# The LAM id rule (`lam.text`): anything else cannot name a conversation.
ConversationId = Annotated[str, Field(pattern=ID_PATTERN, max_length=MAX_ID_CHARS)]


def require_json(request: Request) -> None:
    """A POST body must be JSON: a browser sends a cross-site `text/plain` form unasked."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as Content-Type: application/json, not {media_type or 'none'}",
        )


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, refusing more than `limit` bytes before reading them all, and a
    body that takes longer than `timeout_s` to arrive (408: a slow client holds no
    connection for ever)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(request, limit)
    except TimeoutError:
        raise ApiError(
            408, "body_timeout", f"the body did not arrive within {timeout_s:g} s"
        ) from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if too_big:
            raise ApiError(413, "too_large", f"the body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
