"""What a server's log may hold: no error on a normal path (a plain module).

A log is read as records: a record starts at a line of our text format (`LEVEL logger:
message`) or of the JSON one (`{"time": ..., "level": ...}`), and the lines below it that
start neither (a traceback, a library's dump) belong to it. A record is a problem when it is
logged at ERROR or CRITICAL, or holds a traceback, or is one of the warnings that only ever
mean something is wrong (`SUSPECT`). A test that provokes an error on purpose names it
(`expected`: regular expressions searched in the record's first line).

    problems(text, expected)   the records of `text` that are problems, as text
    LogWatch(path)             the problems added to a log file since the last look
    sweep(directory)           the problems of every log file under it (`*.log`): at the end
                               of a session, every server the tests started (conftest.py)

What a test provokes on purpose it names where it starts the server (`LogWatch`,
`ServerProcess(expected_errors=...)`, or `expect_in`); the sweep allows it in that file
only. `ALLOWED` is for what any log may hold, each with the reason it is no defect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

TEXT_RECORD = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
# `langgraph dev`'s: structlog's console lines (`2026-12-05T07:00:00Z [error  ] …`, in
# colour) and the logging module's default format (`ERROR:logger:message`); uvicorn's own
# (`ERROR:    message`, a server run without our logging, e.g. an MCP test server).
STRUCTLOG_RECORD = re.compile(r"^\S+ \[(debug|info|warning|error|critical)\s*\] ")
BASIC_RECORD = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):(?:[\w.]+:|\s)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BAD_LEVELS = ("ERROR", "CRITICAL")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|Exception Group Traceback")
# Warnings that are a defect whenever they appear (not an outside condition worth a warning).
SUSPECT = re.compile(r"Deserializing unregistered type|Task was destroyed but it is pending")


def _level(first: str) -> str | None:
    if first.startswith("{"):
        try:
            return str(json.loads(first).get("level", "")).upper()
        except ValueError:
            return None
    found = TEXT_RECORD.match(first)
    if found:
        return found.group(1)
    found = STRUCTLOG_RECORD.match(first)
    if found:
        return found.group(1).upper()
    found = BASIC_RECORD.match(first)
    return found.group(1) if found else None


def records(text: str) -> list[list[str]]:
    """The log's records, each its lines (a stray line before any record is one of its own)."""
    out: list[list[str]] = []
    for line in ANSI.sub("", text).splitlines():
        if _level(line) is not None or not out:
            out.append([line])
        else:
            out[-1].append(line)
    return out


def problems(text: str, expected: Iterable[str] = ()) -> list[str]:
    """The records of `text` that report an error nobody expected, each as its text."""
    allowed = [re.compile(p) for p in expected]
    found = []
    for record in records(text):
        first, whole = record[0], "\n".join(record)
        bad = (
            _level(first) in BAD_LEVELS
            or TRACEBACK.search(whole) is not None
            or SUSPECT.search(whole) is not None
        )
        if bad and not any(p.search(first) for p in allowed):
            found.append(whole)
    return found


class LogWatch:
    """The problems a log file gained since the last `check` (a restarted server appends)."""

    def __init__(self, path: Path, expected: Iterable[str] = ()) -> None:
        self.path = path
        self.expected = list(expected)
        self.offset = 0
        expect_in(path, self.expected)

    def new_problems(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            added = log.read()
        self.offset += len(added)
        return problems(added.decode(errors="replace"), self.expected)

    def check(self) -> None:
        """Fail (AssertionError) if the log gained a problem since the last check."""
        found = self.new_problems()
        assert not found, f"{self.path} holds errors:\n\n" + "\n\n".join(found)[-6000:]


# What any log may hold (a regular expression searched in a record's first line: why it is
# no defect). Keep it short; a test that provokes an error names it for its own log instead.
ALLOWED: dict[str, str] = {}

# Per log file (resolved path): what its test provokes on purpose.
_EXPECTED_IN: dict[Path, list[str]] = {}


def expect_in(path: Path, patterns: Iterable[str]) -> None:
    """The log at `path` may hold records matching `patterns` (its test provokes them)."""
    _EXPECTED_IN.setdefault(path.resolve(), []).extend(patterns)


def sweep(directory: Path) -> dict[Path, list[str]]:
    """Every `*.log` under `directory` with the problems it holds (none: not listed)."""
    found: dict[Path, list[str]] = {}
    for path in sorted(directory.rglob("*.log")):
        if not path.is_file():
            continue
        expected = [*ALLOWED, *_EXPECTED_IN.get(path.resolve(), [])]
        bad = problems(path.read_text(errors="replace"), expected)
        if bad:
            found[path] = bad
    return found


def sweep_report(found: dict[Path, list[str]], limit: int = 8000) -> str:
    parts = [f"{path}:\n" + "\n\n".join(records) for path, records in found.items()]
    return (
        "server logs hold errors nobody expected (tests/support/server_log.py):\n\n"
        + ("\n\n".join(parts)[-limit:])
    )
