"""The action catalogue one planning call sees: every step it may plan, described as a tool.

Two kinds of entries, both `lam.Tool`s (docs/tools.md):

- an *executor* entry: one of the planner's executors as a free-form step (`llm`, `desktop`,
  `human`, `template`, `http`, `a2a:<agent>`, ...). Its name is the executor's; a step
  naming it runs on that executor, its arguments becoming the ToDo's `inputs`.
- a *tool* entry: one thing an agent, an MCP server or a catalogue file declared. A step
  naming it is a ToDo with `tool` set (name and arguments), run by the tool's executor.

One namespace for both: a tool may not take an executor's name, and two tools may not share
one. Tools are merged in the order of their sources; a name already taken is qualified by
its source (`cpa-desktop.find_files`), and `call_name` keeps the name its runner knows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lam import Tool

EntryKind = Literal["executor", "tool"]


class SourceUnavailableError(Exception):
    """A source of tools (an MCP server, an A2A agent) could not be listed just now."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Entry:
    """One step the planner may plan: a tool (its executor set) and where it came from."""

    tool: Tool
    kind: EntryKind
    # "executor", "file:<path>", "mcp:<server>", "offer:<agent>", "a2a:<agent>"
    source: str
    # The name the runner knows the tool by (an MCP server's own name, an agent's own).
    call_name: str = ""

    @property
    def name(self) -> str:
        return self.tool.name

    @property
    def executor(self) -> str:
        assert self.tool.executor is not None  # set for every catalogue entry
        return self.tool.executor

    def to_json(self) -> dict[str, Any]:
        """The entry as `GET /v1/tools` and `cpa-planner tools --json` show it."""
        data = self.tool.model_dump(mode="json")
        data["kind"] = self.kind
        data["source"] = self.source
        if self.call_name and self.call_name != self.name:
            data["call_name"] = self.call_name
        return data


@dataclass(frozen=True)
class Catalogue:
    """Executors and tools by name (see the module docstring); immutable."""

    entries: tuple[Entry, ...] = ()
    # Names left out because another entry had them, for a log line and `cpa-planner tools`.
    dropped: tuple[str, ...] = ()
    _index: dict[str, Entry] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update((entry.name, entry) for entry in self.entries)

    @classmethod
    def merge(cls, executors: Iterable[Entry], tools: Iterable[Entry]) -> Catalogue:
        """Executors first (their names are reserved), then tools in source order."""
        taken: dict[str, Entry] = {}
        dropped: list[str] = []
        for entry in executors:
            taken.setdefault(entry.name, entry)
        for entry in tools:
            name = entry.name
            if name in taken:
                owner = entry.source.partition(":")[2] or entry.source
                name = f"{owner}.{entry.name}"
                if name in taken:
                    dropped.append(f"{entry.name} ({entry.source})")
                    continue
                entry = Entry(
                    entry.tool.model_copy(update={"name": name}),
                    entry.kind,
                    entry.source,
                    entry.call_name or entry.name,
                )
            taken[name] = entry
        return cls(tuple(taken.values()), tuple(dropped))

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str) -> Entry | None:
        return self._index.get(name)

    def tool(self, name: str) -> Entry | None:
        """The tool entry of this name (None for an executor's name or an unknown one)."""
        entry = self._index.get(name)
        return entry if entry is not None and entry.kind == "tool" else None

    @property
    def executors(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "executor"]

    @property
    def tools(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "tool"]

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def only(self, names: Iterable[str]) -> Catalogue:
        """Every executor, and the tools named (in catalogue order)."""
        keep = set(names)
        return Catalogue(
            tuple(e for e in self.entries if e.kind == "executor" or e.name in keep), self.dropped
        )

    def ordered(self, names: Iterable[str]) -> Catalogue:
        """The tools named, in the order named (unknown names left out), then every executor.

        Tools first: a planning prompt lists the entries in this order, and a small model
        favours what it reads first; with the free-form executors on top it wrote them for
        most steps (benchmarks.tool_choice).
        """
        tools = [e for e in (self.tool(name) for name in dict.fromkeys(names)) if e is not None]
        return Catalogue((*tools, *self.executors), self.dropped)

    def leading(self, names: Iterable[str]) -> Catalogue:
        """The tools named first, then every executor, then the other tools, each in order.

        A planning prompt in this order puts the tools a step may name first and the ones it
        may not last (a small model also favours what it read last).
        """
        first = [e for e in (self.tool(name) for name in dict.fromkeys(names)) if e is not None]
        rest = [e for e in self.tools if e not in first]
        return Catalogue((*first, *self.executors, *rest), self.dropped)

    def fingerprint(self) -> str:
        """Changes whenever an entry does (for caches keyed by catalogue)."""
        blob = json.dumps([e.to_json() for e in self.entries], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "executors": [e.to_json() for e in self.executors],
            "tools": [e.to_json() for e in self.tools],
        }


def tool_entries(tools: Sequence[Tool], source: str, executor: str) -> list[Entry]:
    """Tool entries from one source, each run by `executor` unless it names its own."""
    return [
        Entry(
            tool if tool.executor else tool.model_copy(update={"executor": executor}),
            "tool",
            source,
            tool.name,
        )
        for tool in tools
    ]
