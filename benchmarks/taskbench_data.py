"""TaskBench's files read as one domain: its catalogue (ours), its tool list (theirs), its
requests with their gold graphs (see `benchmarks.taskbench`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.taskbench_metrics import Sample, read_sample
from graph.tools.catalogue import Catalogue, tool_entries
from graph.tools.files import ToolFileError, load_tool_file

#: The executor the domain's tools run on (a name `check` knows; nothing runs here).
EXECUTOR = "desktop"


class InputError(ValueError):
    """A tools, data or requests file that cannot be used; the message names it."""


# -- the domain --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    id: str
    type: str
    text: str
    gold: dict[str, Any]  # task_nodes, task_links


@dataclass(frozen=True)
class Domain:
    """One TaskBench domain: its catalogue (ours), its tool list (theirs), its requests."""

    catalogue: Catalogue
    nodes: list[dict[str, Any]]  # tool_desc.json's, for TaskBench's prompt
    requests: list[Request]

    @property
    def typed(self) -> bool:
        """Tools with input and output types (multimedia, Hugging Face), not named
        parameters (daily-life APIs): TaskBench's `ignore_tool_type` is the opposite."""
        return bool(self.nodes) and "input-type" in self.nodes[0]

    @property
    def output_types(self) -> dict[str, str] | None:
        """Each tool's first output type (the typed domains' argument names), else None."""
        if not self.typed:
            return None
        return {n["id"]: (n.get("output-type") or ["none"])[0] for n in self.nodes}

    def score_sample(self, graph: Mapping[str, Any] | None) -> Sample | None:
        return None if graph is None else read_sample(graph, self.output_types)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not a JSON object a line: {exc.msg}") from None
        if not isinstance(item, dict):
            raise InputError(f"{path}:{number}: not a JSON object a line")
        yield number, item


def _field(item: Mapping[str, Any], names: Sequence[str], where: str, default: Any = None) -> Any:
    """A graph field under its TaskBench name or the shipped files' (JSON in a string)."""
    for name in names:
        if name in item:
            value = item[name]
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise InputError(f"{where}: {name} is not JSON") from None
            if not isinstance(value, list):
                raise InputError(f"{where}: {name} is not a list")
            return value
    if default is None:
        raise InputError(f"{where}: no {' or '.join(names)}")
    return default


def load_domain(tools: Path, data: Path, requests: Path | None = None) -> Domain:
    """A domain from TaskBench's files (`InputError` names what is wrong, and where)."""
    try:
        loaded = load_tool_file(tools)
    except ToolFileError as exc:
        raise InputError(str(exc)) from None
    try:
        nodes = json.loads(Path(tools).read_text(encoding="utf-8")).get("nodes")
    except (json.JSONDecodeError, AttributeError):
        nodes = None
    if not isinstance(nodes, list) or not nodes:
        raise InputError(f"{tools}: not TaskBench's tool_desc.json (no `nodes`)")
    catalogue = Catalogue.merge([], tool_entries(loaded.tools, loaded.source, EXECUTOR))
    texts: dict[str, str] = {}
    if requests is not None:
        for number, item in _json_lines(requests):
            if not isinstance(item.get("user_request"), str):
                raise InputError(f"{requests}:{number}: no user_request")
            texts[str(item.get("id"))] = item["user_request"]
    found = []
    for number, item in _json_lines(data):
        where = f"{data}:{number}"
        if "id" not in item:
            raise InputError(f"{where}: no id")
        rid = str(item["id"])
        text = texts.get(rid) or item.get("user_request") or item.get("instruction")
        if not isinstance(text, str) or not text:
            raise InputError(f"{where}: request {rid} has no text (user_request, instruction)")
        task_nodes = _field(item, ("task_nodes", "tool_nodes"), where)
        task_links = _field(item, ("task_links", "tool_links"), where, default=[])
        kind = str(item.get("type") or ("single" if len(task_nodes) == 1 else "dag"))
        found.append(Request(rid, kind, text, {"task_nodes": task_nodes, "task_links": task_links}))
    if not found:
        raise InputError(f"{data}: no requests")
    domain = Domain(catalogue, nodes, found)
    for request in found:
        if domain.score_sample(request.gold) is None:
            raise InputError(f"{data}: request {request.id}: its gold graph cannot be read")
    return domain
