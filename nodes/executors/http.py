"""http: calls a URL, but only one that the `http_allowlist` setting admits.

The allow-list is checked on the URL as the server will read it, and that very URL is
the one sent (`graph.allowlist.normalise`); a URL that cannot be read so is bad input: the
ToDo fails with `bad_url`. Redirects are not followed: a 3xx is the ToDo's failure, with
its status.
"""

from __future__ import annotations

from typing import Any

import httpx

from graph.allowlist import BadUrlError, allowed, normalise
from graph.effects import Effect
from graph.executor_registry import ExecutorCall, ExecutorError
from graph.redaction import redact_url
from lam import ToDo

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
SAFE_METHODS = {"GET", "HEAD"}


class HttpExecutor:
    name = "http"
    description = (
        "calls an allow-listed web API: inputs.url, inputs.method (GET by default), "
        "inputs.json or inputs.params; the output is the response's JSON or text"
    )
    receiver: str | None = None
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1, "description": "an allow-listed URL"},
            "method": {"enum": sorted(METHODS), "description": "GET (the default) only reads"},
            "json": {"description": "the JSON body to send"},
            "params": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "query parameters",
            },
        },
        "required": ["url"],
        "additionalProperties": True,
    }
    returns = "the response's JSON, or its text"

    def effect_for(self, todo: ToDo) -> Effect:
        """GET and HEAD only read; every other method may change something."""
        method = str(todo.inputs.get("method", "GET")).upper()
        return "read" if method in SAFE_METHODS else "change"

    async def __call__(self, call: ExecutorCall) -> Any:
        url = call.inputs.get("url")
        if not isinstance(url, str):
            raise ExecutorError("bad_inputs", "the http executor needs inputs.url")
        try:
            target = normalise(url)
        except BadUrlError as exc:
            raise ExecutorError("bad_url", f"{redact_url(url)}: {exc}") from None
        shown = redact_url(str(target))
        if not allowed(str(target), call.settings.http_allowlist):
            raise ExecutorError(
                "url_not_allowed", f"{shown} is not on the http allow-list (CPA_HTTP_ALLOWLIST)"
            )
        method = str(call.inputs.get("method", "GET")).upper()
        if method not in METHODS:
            raise ExecutorError("bad_inputs", f"unsupported HTTP method {method}")
        try:
            async with httpx.AsyncClient(
                timeout=call.settings.http_timeout_s, follow_redirects=False
            ) as client:
                response = await client.request(
                    method,
                    str(target),  # what was checked is what is sent
                    json=call.inputs.get("json"),
                    params=call.inputs.get("params"),
                )
        except httpx.HTTPError as exc:
            raise ExecutorError("http_error", f"{method} {shown}: {exc}", retryable=True) from None
        if response.is_redirect:
            location = redact_url(response.headers.get("location", "")) or "nowhere"
            raise ExecutorError(
                "http_redirect",
                f"{method} {shown} answered {response.status_code}, a redirect to {location} "
                "(redirects are not followed)",
            )
        if not response.is_success:
            raise ExecutorError(
                "http_status",
                f"{method} {shown} answered {response.status_code}",
                retryable=response.status_code >= 500,
            )
        try:
            return response.json()
        except ValueError:
            return response.text
