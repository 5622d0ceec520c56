"""`cpa-planner tools`: the action catalogue the planner plans with (docs/tools.md).

Locally: the executors, the catalogue files, the MCP servers (listed now) and the offers
agents made to the `local` tenant; with `--server`, the server's for the API key's tenant
(`GET /v1/tools`). `--request TEXT` shows only what a planning call for that request would
show, the tools ranked by how close they are to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.table import Table

from cli.conversation_cmds import backend_for, consoles
from cli.exits import OK

_DESCRIPTION_SHOWN = 70


def tools(args: argparse.Namespace) -> int:
    with backend_for(args) as backend:
        catalogue = backend.tools(args.request)
    if args.json:
        sys.stdout.write(json.dumps(catalogue, ensure_ascii=False, indent=2) + "\n")
        return OK
    out, _ = consoles()
    out.print(_table(catalogue, ranked=args.request is not None))
    return OK


def _table(catalogue: dict[str, Any], *, ranked: bool) -> Table:
    table = Table(title="Tools the planner plans with", title_justify="left")
    table.add_column("name")
    table.add_column("effect")
    table.add_column("runs on")
    table.add_column("from")
    if ranked:
        table.add_column("score", justify="right")
    table.add_column("description")
    for entry in [*catalogue["executors"], *catalogue["tools"]]:
        text = " ".join(str(entry.get("description", "")).split())
        if len(text) > _DESCRIPTION_SHOWN:
            text = text[: _DESCRIPTION_SHOWN - 1] + "…"
        row = [entry["name"], entry["effect"], entry["executor"], entry["source"]]
        if ranked:
            score = entry.get("score")
            row.append("" if score is None else f"{score:.2f}")
        table.add_row(*row, text)
    return table
