"""mcp:<server>: calls one tool of a configured MCP server (`graph.tools.mcp`).

A step of this executor names one of the server's tools (`ToDo.tool`, arguments checked
against the tool's schema when the plan was checked and again, resolved, before the call).
It runs like every other ToDo: inside `execute`'s LangGraph task, so a finished call is
saved and never made again on a resume, with the ToDo's timeout and retries (a server that
cannot be reached is retried; a tool that answers with an error is not) and its telemetry.
What a tool does to the world is its own effect (MCP's annotations), not the executor's.
"""

from __future__ import annotations

from typing import Any

from graph.executor_registry import ExecutorCall, ExecutorError
from graph.tools.mcp import McpError, McpServer, call_tool


class McpExecutor:
    """The executor of one MCP server's tools."""

    receiver: str | None = None
    runs_tools = True
    # A free-form step would have nothing to call: every step names one of its tools, and
    # the planner is not offered the executor on its own.
    free_form = False

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.name = server.executor
        self.description = (
            f"calls a tool of the MCP server {server.name!r}; a step names the tool, never "
            "this executor alone"
        )
        self.returns = "the tool's result"

    async def __call__(self, call: ExecutorCall) -> Any:
        if call.tool is None:
            raise ExecutorError(
                "bad_inputs", f"a step of {self.name} must name one of the server's tools"
            )
        settings = call.settings
        try:
            return await call_tool(
                self.server,
                call.tool.name,
                call.tool.arguments,
                settings.mcp_allowlist,
                settings.mcp_timeout_s,
            )
        except McpError as exc:
            raise ExecutorError(exc.code, exc.message, retryable=exc.retryable) from None
