"""http: calls a URL, but only one that the `http_allowlist` setting admits."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from graph.effects import Effect
from graph.executors import ExecutorCall, ExecutorError
from lam import ToDo

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
SAFE_METHODS = {"GET", "HEAD"}


def allowed(url: str, allowlist: tuple[str, ...]) -> bool:
    """True if the URL starts with an allow-listed prefix, compared part by part.

    Comparing scheme, host and port exactly (not as text) keeps
    `https://api.example.com.evil.net` out of an allow-list of `https://api.example.com`.
    """
    target = urlsplit(url)
    if target.scheme not in ("http", "https") or not target.hostname:
        return False
    for entry in allowlist:
        prefix = urlsplit(entry)
        if (prefix.scheme, prefix.hostname, prefix.port) != (
            target.scheme,
            target.hostname,
            target.port,
        ):
            continue
        base = prefix.path.rstrip("/")
        if not base or target.path == base or target.path.startswith(base + "/"):
            return True
    return False


class HttpExecutor:
    name = "http"
    description = (
        "calls an allow-listed web API: inputs.url, inputs.method (GET by default), "
        "inputs.json or inputs.params; the output is the response's JSON or text"
    )
    receiver: str | None = None

    def effect_for(self, todo: ToDo) -> Effect:
        """GET and HEAD only read; every other method may change something."""
        method = str(todo.inputs.get("method", "GET")).upper()
        return "read" if method in SAFE_METHODS else "change"

    async def __call__(self, call: ExecutorCall) -> Any:
        url = call.inputs.get("url")
        if not isinstance(url, str):
            raise ExecutorError("bad_inputs", "the http executor needs inputs.url")
        if not allowed(url, call.settings.http_allowlist):
            raise ExecutorError(
                "url_not_allowed", f"{url} is not on the http allow-list (CPA_HTTP_ALLOWLIST)"
            )
        method = str(call.inputs.get("method", "GET")).upper()
        if method not in METHODS:
            raise ExecutorError("bad_inputs", f"unsupported HTTP method {method}")
        try:
            async with httpx.AsyncClient(
                timeout=call.settings.http_timeout_s, follow_redirects=False
            ) as client:
                response = await client.request(
                    method, url, json=call.inputs.get("json"), params=call.inputs.get("params")
                )
        except httpx.HTTPError as exc:
            raise ExecutorError("http_error", f"{method} {url}: {exc}", retryable=True) from None
        if response.status_code >= 400:
            raise ExecutorError(
                "http_status",
                f"{method} {url} answered {response.status_code}",
                retryable=response.status_code >= 500,
            )
        try:
            return response.json()
        except ValueError:
            return response.text
