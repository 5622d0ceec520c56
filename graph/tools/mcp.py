"""MCP servers as tool sources: list their tools, call one (the official `mcp` SDK).

A server is configured by name (`CPA_MCP_SERVERS=name=COMMAND-or-URL,...`, or `mcp_servers:`
in a catalogue file): a command line starts it over stdio, an `http(s)://` URL reaches it
over streamable HTTP, and only at a URL under `mcp_allowlist` (compared as the `http`
executor compares URLs, `graph.allowlist`). Its tools enter the catalogue as
`<server>.<tool>`, run by the executor `mcp:<server>`; their effect comes from MCP's tool
annotations (`mcp_effect`).

Each listing and each call opens its own session: a stdio server is started for it and
stopped after it. A session that lives as long as the process would save the start-up
(about a second for a Python server), but would have to survive the server crashing, the
event loop that opened it ending, and several runs at once; one session per call has none
of those problems, and a plan calls few tools.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graph.allowlist import allowed
from graph.redaction import redact_url
from graph.tools.catalogue import SourceUnavailableError
from lam import Tool

PREFIX = "mcp:"
_STDERR_KEPT = 600  # characters of a failed server's stderr in the error message


class McpError(SourceUnavailableError):
    """A listing or a call failed; `code` is the ToDo's failure code."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class McpServer:
    """One configured MCP server: a command (stdio) or a URL (streamable HTTP)."""

    name: str
    command: tuple[str, ...] = ()
    url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    @classmethod
    def parse(cls, name: str, spec: str) -> McpServer:
        """`spec` from the environment: a URL, or a command line (split like a shell would)."""
        spec = spec.strip()
        if spec.startswith(("http://", "https://")):
            return cls(name, url=spec)
        try:
            argv = tuple(shlex.split(spec))
        except ValueError as exc:
            raise ValueError(
                f"MCP server {name}: cannot read the command {spec!r}: {exc}"
            ) from None
        if not argv:
            raise ValueError(f"MCP server {name}: no command and no URL")
        return cls(name, command=argv)

    @property
    def executor(self) -> str:
        return f"{PREFIX}{self.name}"

    def where(self) -> str:
        return redact_url(self.url) if self.url else shlex.join(self.command)


def mcp_effect(annotations: Any) -> str:
    """MCP's hints as an effect: read-only → `read`; destructive → `delete`; only additive
    (`destructiveHint: false`) → `write`; nothing declared → `change` (it may do anything)."""
    if annotations is None:
        return "change"
    if getattr(annotations, "read_only_hint", None) is True:
        return "read"
    destructive = getattr(annotations, "destructive_hint", None)
    if destructive is True:
        return "delete"
    if destructive is False:
        return "write"
    return "change"


@contextlib.asynccontextmanager
async def session(
    server: McpServer, allowlist: tuple[str, ...], timeout_s: float
) -> AsyncIterator[Any]:
    """A connected `mcp.Client` for one listing or call; McpError when none can be had."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    if server.url is not None:
        if not allowed(server.url, allowlist):
            raise McpError(
                "url_not_allowed",
                f"MCP server {server.name} at {server.where()} is not on the allow-list "
                "(CPA_MCP_ALLOWLIST)",
            )
        target: Any = server.url
        errlog = None
    else:
        params = StdioServerParameters(
            command=server.command[0],
            args=list(server.command[1:]),
            env=dict(server.env) or None,
            cwd=server.cwd,
        )
        # Closed below, once the session is over; its tail explains a server that failed.
        errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        target = stdio_client(params, errlog=errlog)
    try:
        try:
            async with Client(target, read_timeout_seconds=timeout_s) as client:
                yield client
        except McpError:
            raise
        except Exception as exc:
            raise McpError(
                "mcp_unreachable",
                f"MCP server {server.name} ({server.where()}): {_what(exc)}{_stderr(errlog)}",
                retryable=True,
            ) from None
    finally:
        if errlog is not None:
            errlog.close()


async def list_tools(server: McpServer, allowlist: tuple[str, ...], timeout_s: float) -> list[Tool]:
    """The server's tools as catalogue tools: `<server>.<tool>`, run by `mcp:<server>`."""
    tools: list[Tool] = []
    async with session(server, allowlist, timeout_s) as client:
        cursor: str | None = None
        for _ in range(100):  # pages; a server that never stops paging is cut off
            page = await client.list_tools(cursor=cursor)
            for remote in page.tools:
                tools.append(
                    Tool(
                        name=f"{server.name}.{remote.name}",
                        description=(remote.description or remote.title or "").strip(),
                        input_schema=dict(remote.input_schema or {"type": "object"}),
                        effect=mcp_effect(remote.annotations),
                        executor=server.executor,
                    )
                )
            cursor = page.next_cursor
            if not cursor:
                break
    return tools


async def call_tool(
    server: McpServer,
    name: str,
    arguments: Mapping[str, Any],
    allowlist: tuple[str, ...],
    timeout_s: float,
) -> Any:
    """Call one tool once; its structured result, else its text. McpError when it fails.

    A structured result that is only `{"result": value}` is `value`: the SDKs wrap a tool's
    plain return value so (structured results had to be objects before MCP 2026-07-28).
    """
    async with session(server, allowlist, timeout_s) as client:
        try:
            result = await client.call_tool(name, dict(arguments))
        except Exception as exc:
            raise McpError(
                "mcp_error", f"MCP server {server.name}: {name}: {_what(exc)}", retryable=True
            ) from None
    text = "\n".join(
        str(block.text) for block in result.content if getattr(block, "type", "") == "text"
    )
    if result.is_error:
        raise McpError("tool_error", f"{server.name}.{name}: {text or 'the tool failed'}")
    structured = result.structured_content
    if isinstance(structured, dict) and set(structured) == {"result"}:
        return structured["result"]
    if structured is not None:
        return structured
    others = [
        block.model_dump(mode="json", exclude={"data", "blob"}, exclude_none=True)
        for block in result.content
        if getattr(block, "type", "") != "text"
    ]
    return text if not others else {"text": text, "content": others}


def _what(exc: BaseException) -> str:
    """An exception in words; an anyio task group's group of one is unwrapped."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _stderr(errlog: Any) -> str:
    if errlog is None:
        return ""
    try:
        errlog.seek(0)
        tail = errlog.read()[-_STDERR_KEPT:].strip()
    except (OSError, ValueError):
        return ""
    return f"; its stderr: {tail}" if tail else ""
