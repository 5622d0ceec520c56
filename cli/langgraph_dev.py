"""`langgraph` (LangGraph's CLI) with its start-up banner muted: what `cpa-planner studio` runs.

`langgraph dev` logs a banner of about 15 lines (ASCII art, the addresses) at INFO whatever
LOG_LEVEL says; `cpa-planner studio` prints the two addresses itself. Nothing else changes.

    python -m cli.langgraph_dev dev --no-browser --port P    (the arguments of `langgraph`)
"""

from __future__ import annotations

import logging

from langgraph_cli.cli import cli


def main() -> None:
    logging.getLogger("langgraph_api.cli").setLevel(logging.WARNING)
    cli(prog_name="langgraph")


if __name__ == "__main__":
    main()
