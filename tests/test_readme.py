"""The README stays true: its commands exist; the graph's picture in the docs is current."""

from __future__ import annotations

import re
from pathlib import Path

from graph.diagram import PAGE, mermaid, page_block

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_the_graph_picture_is_current() -> None:
    block = page_block(PAGE.read_text())
    assert block == mermaid(), "regenerate it: python -m graph.diagram --write"


def test_quick_start_commands_match_the_makefile_and_ci() -> None:
    text = README.read_text()
    quick = text[text.index("## Quick start") :]
    commands = re.findall(r"^\s*(make \w+)", quick.split("```")[1], re.MULTILINE)
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "demo:" in makefile and "test:" in makefile
    # CI runs the README's test command.
    assert "make test" in (ROOT / ".ci" / "run").read_text()
