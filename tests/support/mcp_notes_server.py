"""An MCP server written with the official SDK, for the tests: notes, over streamable HTTP.

    python tests/support/mcp_notes_server.py PORT

Serves http://127.0.0.1:PORT/mcp until stopped. Its tools declare their effects with
MCP's annotations: `shout` only reads, `add_note` only adds, `delete_note` destroys.
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("notes")
NOTES: dict[str, str] = {"REPORT": "Q3 numbers"}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def shout(text: str) -> str:
    """Repeat a text in capital letters."""
    return text.upper()


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def add_note(title: str, text: str) -> str:
    """Add a note."""
    NOTES[title] = text
    return f"added {title}"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def delete_note(title: str) -> str:
    """Delete a note for good."""
    if title not in NOTES:
        raise ValueError(f"no note called {title!r}")
    del NOTES[title]
    return f"deleted {title}"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
