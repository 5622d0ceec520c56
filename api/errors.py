"""Errors as JSON: `ApiError`, the `{"error": {"code", "message", "fields"?}}` body, handlers.

Every error the app answers has that body, whatever raised it (docs/http.md: a message that says
what was wrong; never a 500 for bad input).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lam import LAMValidationError

logger = logging.getLogger("cpa_planner.server")


class FieldProblem(BaseModel):
    field: str = Field(description="dotted path of the field, '' for the message as a whole")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. `invalid_message`, `nothing_waiting`")
    message: str = Field(description="what was wrong, for a person")
    fields: list[FieldProblem] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message", "fields"?}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        detail: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            detail["fields"] = self.fields
        return JSONResponse({"error": detail}, status_code=self.status, headers=self.headers)


def not_found(conversation_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no conversation {conversation_id}")


def starting() -> ApiError:
    return ApiError(503, "starting", "the server is starting or stopping; retry shortly")


def invalid_message(exc: LAMValidationError) -> ApiError:
    return ApiError(422, "invalid_message", str(exc), [dict(e) for e in exc.errors])


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for these error statuses (for the OpenAPI document)."""
    what = {
        401: "no or unknown credential (API key or token), or a refused token",
        403: "not allowed: without API keys, a request that is not from this machine "
        "(`local_only`); a credential without the scope (`forbidden`) or speaking as "
        "another sender (`wrong_sender`); an answer from someone the question was not "
        "sent to",
        408: "the body did not arrive in time",
        404: "no such conversation (or another tenant's)",
        409: "conflicts with the conversation's state",
        413: "body over the limit",
        415: "the body is not `application/json`",
        422: "invalid input; `fields` names the field paths",
        429: "too many of your conversations are running or waiting, too many requests "
        "this minute, or your conversations keep too many bytes; see `Retry-After`",
        503: "Redis unreachable",
    }
    return {c: {"model": ErrorBody, "description": what[c]} for c in codes}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception with the error body: ours, FastAPI's, Redis's, and the rest."""
    from graph.storage.errors import REDIS_DOWN, RedisUnavailableError

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(LAMValidationError)
    async def lam_error(_: Request, exc: LAMValidationError) -> JSONResponse:
        return invalid_message(exc).response()

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg"))}
            for e in exc.errors()
        ]
        names = ", ".join(f["field"] for f in fields)
        return ApiError(422, "invalid_request", f"invalid {names}", fields).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail), None, exc.headers).response()

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RedisUnavailableError):
            # The replica's own keys go through the saver's client directly: said the same way.
            replica = getattr(request.app.state, "replica", None)
            url = replica.saver.url if replica is not None else "redis://?"
            exc = RedisUnavailableError(url, exc)
        # Where Redis is, is the operator's business: the log says (redacted), not the body.
        logger.warning("%s", exc)
        return ApiError(
            503, "redis_unavailable", "the server's Redis is unreachable; retry shortly"
        ).response()

    for down in REDIS_DOWN:
        app.add_exception_handler(down, redis_down)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return ApiError(500, "internal", "internal error; the server log has details").response()
