"""A registry's YAML with its marks: the values to validate, and where each one was written.

The text is composed (PyYAML's node graph keeps every node's line and column), cleaned of
what a model cannot see once it is a dict (a key given twice: the first one counts, as it
would for a person reading it; a key that is not a string), then constructed into plain
values. :func:`node_at` walks a pydantic error's ``loc`` down the same nodes, so a problem
found in the values is reported where it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Located", "compose", "node_at", "position"]

# libyaml's parser when PyYAML has it: ten times faster on the packaged registry, which
# `intents explain` reads on every start. Its nodes carry the same line marks.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
#: The part of a pydantic loc that stands for a mapping's key, not its value.
KEY_PART = "[key]"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """A composed document: its root node, its values, and the keys it had to drop."""

    root: yaml.Node
    value: Any
    dropped: list[tuple[yaml.Node, Loc, str]]  # (key node, where its mapping is, why)


def compose(text: str) -> Located | None:
    """The document of ``text`` (None: it is empty). Raises ``yaml.YAMLError`` (its marks
    say where) for text that is not YAML or cannot be constructed."""
    root = yaml.compose(text, Loader=_COMPOSER)
    if root is None:
        return None
    dropped = _drop_bad_keys(root)
    value = yaml.SafeLoader("").construct_object(root, deep=True)
    return Located(root, value, dropped)


def _drop_bad_keys(root: yaml.Node) -> list[tuple[yaml.Node, Loc, str]]:
    """Takes repeated and non-string keys out of every mapping, and says which and why."""
    dropped: list[tuple[yaml.Node, Loc, str]] = []
    seen_nodes: set[int] = set()  # an alias is the same node again: clean it once
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            kept: list[tuple[yaml.Node, yaml.Node]] = []
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "<<":
                    kept.append((key, value))  # a merge: PyYAML resolves it
                elif not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
                    shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
                    dropped.append((key, loc, f"keys must be strings, not {shown}"))
                elif key.value in keys:
                    dropped.append((key, loc, f"key '{key.value}' appears twice"))
                else:
                    keys.add(key.value)
                    kept.append((key, value))
                    stack.append((value, (*loc, key.value)))
            node.value = kept
    return dropped


def node_at(root: yaml.Node, loc: Loc, *, on_key: bool = False) -> yaml.Node:
    """The node a pydantic error's ``loc`` is about: the value there, or its key (``on_key``,
    or a loc ending in ``[key]``); where the loc leaves the document (a missing key), the
    deepest node on the way."""
    node = root
    key_node: yaml.Node | None = None
    for part in loc:
        if part == KEY_PART:
            return key_node or node
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next(((k, v) for k, v in node.value if k.value == part), None)
            if found is None:
                return node
            key_node, node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return node
            key_node, node = None, node.value[part]
        else:
            return node  # e.g. a single string where a list is allowed: the string
    return key_node if on_key and key_node is not None else node


def position(node: yaml.Node) -> tuple[int, int]:
    """1-based line and column where the node starts."""
    mark = node.start_mark
    return mark.line + 1, mark.column + 1
