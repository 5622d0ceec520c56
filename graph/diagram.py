"""The graph's picture for docs/architecture.md, drawn from the compiled graph.

python -m graph.diagram          # print the mermaid block
python -m graph.diagram --write  # replace the block in docs/architecture.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from graph.builder import graph

PAGE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCK = re.compile(r"```mermaid\n.*?```\n", re.DOTALL)


def mermaid() -> str:
    return f"```mermaid\n{graph.get_graph().draw_mermaid()}```\n"


def page_block(text: str) -> str | None:
    found = BLOCK.search(text)
    return found.group(0) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description="Draw the planning graph as mermaid.")
    parser.add_argument("--write", action="store_true", help="update docs/architecture.md in place")
    args = parser.parse_args()
    if not args.write:
        print(mermaid(), end="")
        return
    text = PAGE.read_text()
    if page_block(text) is None:
        raise SystemExit(f"{PAGE} has no ```mermaid block to replace")
    PAGE.write_text(BLOCK.sub(lambda _m: mermaid(), text, count=1))


if __name__ == "__main__":
    main()
