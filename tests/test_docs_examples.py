"""Examples in the docs, run as written: docs/cli.md's error messages are what the command
prints (the README's walkthrough, A2A client and desktop agent have their own tests:
test_readme_walkthrough, test_a2a_server, test_desktop_agent_example).

A ```console block is a terminal: `$ command` lines, each followed by what it prints; an
ellipsis stands for any text within a line, and a line of only "…" for any lines. Commands
run in bash with the virtualenv on PATH (as after `. .venv/bin/activate`), no LLM and no
Redis configured, the embedded store in a temporary directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_harness import ROOT, clean_env

ELLIPSIS = "…"


def console_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```console\n(.*?)^```$", markdown, re.M | re.S)


def transcript(block: str) -> list[tuple[str, list[str]]]:
    """The block's commands, each with the lines it is said to print."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in expected.split(ELLIPSIS)]
    return re.compile(".*".join(parts) + r"\s*")


def matches(expected: list[str], printed: list[str]) -> bool:
    """Whether `printed` is `expected`, with "…" as a wildcard (a lone one: any lines)."""
    if not expected:
        return not printed
    head, rest = expected[0], expected[1:]
    if head == ELLIPSIS:
        return any(matches(rest, printed[i:]) for i in range(len(printed) + 1))
    return (
        bool(printed)
        and bool(_line_pattern(head).fullmatch(printed[0]))
        and matches(rest, printed[1:])
    )


def _errors_block() -> str:
    page = (ROOT / "docs" / "cli.md").read_text()
    (block,) = [b for b in console_blocks(page) if "cpa-planner: error:" in b]
    return block


@pytest.mark.slow  # each starts the command line, some the embedded store
@pytest.mark.parametrize(
    "command", [c for c, _ in transcript(_errors_block())], ids=lambda c: c.split('"')[0][:40]
)
def test_the_cli_error_examples_are_what_it_prints(command: str, tmp_path: Path) -> None:
    expected = dict(transcript(_errors_block()))[command]
    without_comment = command.split("  #")[0]
    env = clean_env(tmp_path, PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    done = subprocess.run(
        ["bash", "-c", f"{without_comment} 2>&1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    assert matches(expected, printed), "\n".join(printed)
    assert done.returncode != 0  # each one is an error


def test_the_pattern_reads_ellipses_as_the_docs_mean_them() -> None:
    assert matches(["a: …; b"], ["a: anything at all; b"])
    assert matches(["…", "error: x"], ["one", "two", "error: x"])
    assert not matches(["error: x"], ["error: y"])
    assert not matches(["a"], ["a", "extra line"])
