"""TaskBench's metrics, as its `evaluate.py` (microsoft/JARVIS, `taskbench/`) defines them.

A sample is a tool graph: `task_nodes` (`{"task": name, "arguments": [...]}`) and, for the
daily-life APIs, `task_links` (`{"source", "target"}` by tool name). Two modes, as theirs:

- *typed* (the multimedia and Hugging Face domains, whose tools have an `input-type`): the
  links are read from the arguments: an argument holding `<node-j>` is the output of node j
  (numbered from 0; a node naming itself is skipped), a link from node j's tool to this
  one, and becomes the argument `{"name": <node j's output type>, "value": <its tool>}`;
  any other argument becomes `{"name": <image|audio|video|text, by file extension>,
  "value": <it>}`; tool names have `_` read as a space;
- *named* (the daily-life APIs, `ignore_tool_type`): arguments are `{"name", "value"}` as
  written, links are the sample's `task_links`.

Over all samples at once (micro-averaged, sets per sample, as their `flatten` + sklearn's
`precision_recall_fscore_support`):

    node F1       tool names; a name that is no tool of the catalogue counts for neither
                  side (their `labels=types`)
    edge F1       (source tool, target tool) pairs
    arg-name F1   "tool-argument name" strings
    arg-value F1  "tool-argument name-value" strings

Each F1 is 2·TP / (2·TP + FP + FN), 0 where nothing was predicted or expected. An
argument their code cannot read (a number, a `<node-j>` past the end) is replaced by the
argument read before it, as theirs does (its `except: pass`); where there is none, or a
name is no string, theirs drops the sample from every metric: `read_sample` returns None
and the caller decides (`benchmarks.taskbench` counts it as an empty answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_EXTENSIONS = {
    "image": ["jpg", "png", "jpeg", "gif", "bmp", "tiff", "svg", "ico"],
    "audio": ["mp3", "wav", "wma", "ogg", "aac", "flac", "aiff", "au"],
    "video": ["mp4", "avi", "mov", "flv", "wmv", "mkv", "webm", "m4v", "mpg", "mpeg"],
}
NODE_TAG = "<node-"


def content_type(value: str) -> str:
    """Their `get_content_type`: the kind of a literal argument, by the extension it names."""
    value = value.strip("'")
    for kind, extensions in _EXTENSIONS.items():
        if any("." + ext in value for ext in extensions):
            return kind
    return "text"


@dataclass(frozen=True)
class Sample:
    """One graph as the metrics read it."""

    nodes: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    arg_names: tuple[str, ...]
    arg_values: tuple[str, ...]


class Unreadable(Exception):
    """A prediction `evaluate.py` would fail on (it drops the sample)."""


def read_sample(graph: Mapping[str, Any], output_types: Mapping[str, str] | None) -> Sample | None:
    """`graph` (`task_nodes`, `task_links`) as the metrics see it; `output_types` (tool →
    its first output type) selects the typed mode, None the named one. None: unreadable."""
    try:
        return _read(graph, output_types)
    except (Unreadable, KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def _read(graph: Mapping[str, Any], output_types: Mapping[str, str] | None) -> Sample:
    nodes = graph["task_nodes"]
    if not isinstance(nodes, list):
        raise Unreadable("task_nodes is not a list")
    raw_names = [node["task"] for node in nodes]
    if not all(isinstance(n, str) for n in raw_names):
        raise Unreadable("a task that is not a string")
    links: list[tuple[str, str]] = []
    arguments: list[list[tuple[str, Any]]] = []
    if output_types is not None:
        names = [n.replace("_", " ") for n in raw_names]
        last: tuple[str, Any] | None = None  # theirs re-adds it after a failed argument
        for index, node in enumerate(nodes):
            read: list[tuple[str, Any]] = []
            for argument in node.get("arguments", []) if isinstance(node, dict) else []:
                try:
                    if isinstance(argument, dict):
                        argument = next(iter(argument.values()))
                    if isinstance(argument, list):
                        argument = " ".join(argument)
                    if not isinstance(argument, str):
                        raise Unreadable(f"argument {argument!r} is not text")
                    if NODE_TAG in argument:
                        start = argument.index(NODE_TAG) + len(NODE_TAG)
                        j = int(argument[start : argument.index(">")])
                        if j == index:
                            continue
                        source = names[j]
                        links.append((source, node["task"]))
                        last = (output_types.get(source, "other"), source)
                    else:
                        last = (content_type(argument), argument)
                except (Unreadable, TypeError, ValueError, IndexError, StopIteration):
                    if last is None:
                        raise Unreadable("an argument it cannot read") from None
                read.append(last)
            arguments.append(read)
    else:
        names = list(raw_names)
        # Theirs reads the answer's links as they are: an answer without them is dropped.
        links = [(link["source"], link["target"]) for link in graph["task_links"]]
        for node in nodes:
            arguments.append([(a["name"], a["value"]) for a in node.get("arguments", [])])
    arg_names = [f"{t}-{n}" for t, args in zip(names, arguments, strict=True) for n, _ in args]
    arg_values = [f"{t}-{n}-{v}" for t, args in zip(names, arguments, strict=True) for n, v in args]
    return Sample(tuple(names), tuple(links), tuple(arg_names), tuple(arg_values))


@dataclass
class Counts:
    """True positives, false positives and false negatives of one metric."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    def add(self, gold: Iterable[Any], predicted: Iterable[Any], types: Any = None) -> None:
        """One sample, as their `flatten`: the union of both sets, each item counted once;
        with `types`, an item outside them counts for neither side."""
        gold_set, predicted_set = set(gold), set(predicted)
        for item in gold_set | predicted_set:
            if types is not None and item not in types:
                continue
            if item in gold_set and item in predicted_set:
                self.tp += 1
            elif item in predicted_set:
                self.fp += 1
            else:
                self.fn += 1


@dataclass
class Scores:
    """The four F1s over many samples."""

    node: Counts = field(default_factory=Counts)
    edge: Counts = field(default_factory=Counts)
    arg_name: Counts = field(default_factory=Counts)
    arg_value: Counts = field(default_factory=Counts)
    samples: int = 0

    def add(self, gold: Sample, predicted: Sample | None, tools: Sequence[str]) -> None:
        """One request: its gold graph and the predicted one (None: counted as empty)."""
        empty = Sample((), (), (), ())
        got = predicted or empty
        self.node.add(gold.nodes, got.nodes, set(tools))
        self.edge.add(gold.links, got.links)
        self.arg_name.add(gold.arg_names, got.arg_names)
        self.arg_value.add(gold.arg_values, got.arg_values)
        self.samples += 1

    def to_json(self) -> dict[str, float | int]:
        return {
            "samples": self.samples,
            "node_f1": round(self.node.f1, 4),
            "edge_f1": round(self.edge.f1, 4),
            "arg_name_f1": round(self.arg_name.f1, 4),
            "arg_value_f1": round(self.arg_value.f1, 4),
        }
