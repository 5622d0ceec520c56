"""Narrowing a large catalogue to the tools that may fit one request (TF-IDF, top k).

The tools a planning call sees are listed closest first, narrowed or not, and before the
executors (a small model favours what it reads first). A plan prompt and
its grammar grow with every tool listed: a small model's context fills
and its choice gets worse. Above `planner_max_tools` tools, the planner sees the k tools
whose names and descriptions are closest to the request (cosine similarity of TF-IDF
vectors), plus every executor; a repair also keeps the tools the plan already names.

Character n-grams within words (3 to 5 letters) rather than whole words: "shredding" meets
"shred", "Dateien" meets "Datei", `send_email` meets "email", without a stemmer per
language. The measured recall on a 200-tool catalogue is in docs/tools.md
(`benchmarks/tool_narrowing.py`).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from graph.tools.catalogue import Catalogue, Entry

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_.\-/:]+")


def tool_text(entry: Entry) -> str:
    """What a tool is matched by: its name as words, description, arguments, what it returns."""
    tool = entry.tool
    name = _SEPARATORS.sub(" ", _CAMEL.sub(" ", entry.call_name or tool.name))
    parts = [name, name, tool.description, tool.returns]  # the name counts twice
    properties = tool.input_schema.get("properties")
    if isinstance(properties, dict):
        for key, schema in properties.items():
            parts.append(_SEPARATORS.sub(" ", str(key)))
            if isinstance(schema, dict) and isinstance(schema.get("description"), str):
                parts.append(schema["description"])
    return " ".join(p for p in parts if p).lower()


class ToolIndex:
    """The TF-IDF vectors of one catalogue's tools (built once per catalogue, cached)."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.names = [entry.name for entry in entries]
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True
        )
        self.matrix = self.vectorizer.fit_transform([tool_text(e) for e in entries])

    def rank(self, request: str) -> list[tuple[str, float]]:
        """Every tool, closest to the request first (ties: catalogue order)."""
        query = self.vectorizer.transform([request.lower()])
        scores = (self.matrix @ query.T).toarray().ravel()
        order = sorted(range(len(self.names)), key=lambda i: (-scores[i], i))
        return [(self.names[i], float(scores[i])) for i in order]


_INDEXES: OrderedDict[str, ToolIndex] = OrderedDict()
_INDEXES_KEPT = 32
_lock = threading.Lock()


def _index(catalogue: Catalogue) -> ToolIndex:
    """The catalogue's index, built once per distinct catalogue (the latest few kept)."""
    key = catalogue.fingerprint()
    with _lock:
        index = _INDEXES.get(key)
        if index is not None:
            _INDEXES.move_to_end(key)
            return index
    index = ToolIndex(catalogue.tools)
    with _lock:
        _INDEXES[key] = index
        while len(_INDEXES) > _INDEXES_KEPT:
            _INDEXES.popitem(last=False)
    return index


def rank_tools(catalogue: Catalogue, request: str) -> list[tuple[str, float]]:
    """The catalogue's tools (not its executors), closest to the request first."""
    if not catalogue.tools:
        return []
    return _index(catalogue).rank(request)


def action_shortlists(catalogue: Catalogue, parts: Sequence[str], k: int) -> list[list[str]]:
    """For each of a request's actions `parts`, the at most `k` tools of `catalogue` closest
    to it, closest first; none (no constraint) for an action no tool shares a word with."""
    if k < 1 or not catalogue.tools:
        return []
    return [
        [name for name, score in rank_tools(catalogue, part)[:k] if score > 0] for part in parts
    ]


def narrow(
    catalogue: Catalogue,
    request: str,
    k: int,
    keep: Iterable[str] = (),
    parts: Sequence[str] = (),
) -> Catalogue:
    """At most `k` tools, those closest to the request, plus `keep`, then every executor;
    the tools closest first (a small model favours what it reads first).

    `parts`, the request's actions (`graph.intents.compound`): each is ranked on its own
    and the tools are taken in turns, the closest to the whole request, then the closest
    to each action, then the second closest of each, ..., so that no action's tool is
    crowded out by those of a longer or more wordy one. The tools are then listed in the
    order they were taken."""
    tools = catalogue.tools
    if not tools:
        return catalogue
    queries = [request, *(p for p in parts if p.strip())]
    rankings = [[name for name, _ in rank_tools(catalogue, q)] for q in queries]
    turns = [name for turn in zip(*rankings, strict=True) for name in turn]
    chosen = {name for name in keep if catalogue.tool(name) is not None}
    limit = max(k, len(chosen))
    for name in turns:
        if len(chosen) >= limit:
            break
        chosen.add(name)
    return catalogue.ordered(name for name in turns if name in chosen)


def catalogue_view(catalogue: Catalogue, request: str | None, k: int) -> dict[str, Any]:
    """The catalogue as JSON (`GET /v1/tools`, `cpa-planner tools`): whole, or for a
    request, what a planning call would show, the tools ranked, each with its score."""
    if request is None:
        return catalogue.to_json()
    shown = narrow(catalogue, request, k)
    scores = dict(rank_tools(catalogue, request))
    ranked = sorted(shown.tools, key=lambda e: -scores.get(e.name, 0.0))
    return {
        "executors": [e.to_json() for e in shown.executors],
        "tools": [{**e.to_json(), "score": round(scores.get(e.name, 0.0), 4)} for e in ranked],
    }
