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


# The front page stays a front page: what it is, the quick start, the walkthrough, where to
# go next. Room for a few more lines, not for another chapter (that goes to docs/).
FRONT_PAGE_LINES = 215


def test_the_readme_is_a_short_front_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= FRONT_PAGE_LINES, "move detail to docs/ and link it"
    headings = re.findall(r"^## (.+)$", text, re.M)
    for needed in ("Quick start", "Walkthrough over HTTP", "Benchmarks", "Dependencies"):
        assert needed in headings, headings
    assert headings[-1] == "Where to go next", headings
    # A reader cannot follow "issue N": the docs say what, not which ticket.
    assert not re.search(r"\bissues? #?\d", text, re.I)


def test_every_page_of_docs_is_linked_from_the_front_page() -> None:
    text = README.read_text()
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", text))
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"not linked from README.md: {sorted(pages - linked)}"
    assert all((ROOT / link).exists() for link in linked), linked


def test_the_benchmarks_named_on_the_front_page_exist() -> None:
    text = README.read_text()
    section = text[text.index("## Benchmarks") : text.index("## Dependencies")]
    names = re.findall(r"\| `(\w+)` \|$", section, re.M)
    assert names, section
    for name in names:
        module = ROOT / "benchmarks" / name
        assert module.with_suffix(".py").exists() or (module / "__main__.py").exists(), name
        assert f"benchmarks.{name}" in (ROOT / "docs" / "benchmarks.md").read_text(), name
