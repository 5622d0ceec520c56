"""The JSON Schema a planner model's answer is held to, generated from the action catalogue.

A grammar-constrained server (llama.cpp's `json_schema`, Ollama's `format`, OpenAI's
structured outputs) turns it into the only answers the model can write: a step is one of a
variant per catalogue entry, each naming its entry (`"tool": {"const": ...}`, written first,
so a grammar commits to one variant at once) and that entry's own `arguments` object,
narrowed by `for_grammar` to what a grammar can hold. The answer is read by
`graph.plan_steps` (`PlanDraft`, `RemainingSteps`), whose pydantic schema this extends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph.plan_steps import plan_draft_model, remaining_steps_model
from graph.tools.catalogue import Catalogue, Entry
from lam.tools import STEP_REFERENCE

#: Bounds on what a grammar lets the model write into arguments.
ARGUMENT_TEXT_MAX = 200
ARGUMENT_ITEMS_MAX = 8
_ARGUMENT_DEPTH_MAX = 6
_STEP_OUTPUT_DEF = "step_output"


def plan_json_schema(catalogue: Catalogue, max_steps: int) -> dict[str, Any]:
    """The schema of a `PlanDraft` whose steps each name one entry of `catalogue`."""
    model = plan_draft_model(max_steps)
    base = model.model_json_schema()
    return _with_steps(base, catalogue, max_steps, "PlanDraft")


def remaining_json_schema(catalogue: Catalogue, highest: int, max_steps: int) -> dict[str, Any]:
    """The schema of a replanning round's `RemainingSteps` for `catalogue`."""
    base = remaining_steps_model(highest, max_steps).model_json_schema()
    return _with_steps(base, catalogue, highest, "RemainingSteps")


def _with_steps(
    base: dict[str, Any], catalogue: Catalogue, highest: int, title: str
) -> dict[str, Any]:
    """`base` (pydantic's schema) with its steps one of a variant per catalogue entry."""
    defs: dict[str, Any] = dict(base.pop("$defs", {}))
    step = defs.pop("Step")
    common = {
        key: step["properties"][key]
        for key in ("title", "description", "after", "requires_approval")
    }
    for key in ("title", "description", "after"):
        defs[f"step_{key}"] = {k: v for k, v in common[key].items() if k != "title"}
    defs[_STEP_OUTPUT_DEF] = {
        "type": "object",
        "properties": {STEP_REFERENCE: {"type": "integer", "minimum": 1, "maximum": highest}},
        "required": [STEP_REFERENCE],
        "additionalProperties": False,
    }
    variants = []
    for n, entry in enumerate(catalogue, 1):
        name = f"step_{n}"
        defs[name] = {
            "type": "object",
            "description": f"a step of {entry.name}",
            # `tool` first: once the model has written it, one variant is left to follow
            # (a grammar that kept every variant alive through the title and description
            # slowed llama.cpp's sampling down tenfold).
            "properties": {
                "tool": {"const": entry.name},
                "title": {"$ref": "#/$defs/step_title"},
                "description": {"$ref": "#/$defs/step_description"},
                "arguments": arguments_schema(entry, highest > 1),
                "after": {"$ref": "#/$defs/step_after"},
                "requires_approval": {"type": "boolean"},
            },
            "required": ["tool", "title", "description", "arguments", "after"],
            "additionalProperties": False,
        }
        variants.append({"$ref": f"#/$defs/{name}"})
    base["properties"]["steps"]["items"] = {"anyOf": variants}
    base["title"] = title
    base["additionalProperties"] = False
    base["$defs"] = defs
    return base


def arguments_schema(entry: Entry, references: bool = True) -> dict[str, Any]:
    """A tool's arguments' schema as the grammar holds the model to it (see `for_grammar`);
    with `references`, each top-level argument may be `{"$step": N}` instead."""
    schema = entry.tool.input_schema
    bounded = for_grammar(schema, schema)
    properties = bounded.get("properties")
    if references and isinstance(properties, dict):
        bounded["properties"] = {
            name: {"anyOf": [value, {"$ref": f"#/$defs/{_STEP_OUTPUT_DEF}"}]}
            for name, value in properties.items()
        }
    return bounded


def for_grammar(schema: Any, root: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """A narrower copy of a JSON Schema for grammar-constrained decoding: only the keywords
    a grammar can hold (types, properties, required, enum, const, items, anyOf, bounds),
    `$ref`s inlined, objects closed to keys of their own, strings and arrays bounded. A
    value it allows is a value the original allows (where it reads the keyword at all)."""
    if not isinstance(schema, Mapping) or depth > _ARGUMENT_DEPTH_MAX:
        return {"type": "string", "maxLength": ARGUMENT_TEXT_MAX}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(ref, root)
        merged = {**(target or {}), **{k: v for k, v in schema.items() if k != "$ref"}}
        return for_grammar(merged, root, depth + 1)
    if "const" in schema:
        return {"const": schema["const"]}
    if isinstance(schema.get("enum"), list):
        return {"enum": list(schema["enum"])}
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return {"anyOf": [for_grammar(s, root, depth + 1) for s in schema[key]]}
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return for_grammar({**schema["allOf"][0], **rest}, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        return {"anyOf": [for_grammar({**schema, "type": t}, root, depth + 1) for t in kind]}
    if kind == "object" or (kind is None and "properties" in schema):
        return _object_for_grammar(schema, root, depth)
    if kind == "array":
        items = for_grammar(schema.get("items", {"type": "string"}), root, depth + 1)
        out: dict[str, Any] = {"type": "array", "items": items}
        low = schema.get("minItems")
        high = min(int(schema.get("maxItems", ARGUMENT_ITEMS_MAX)), ARGUMENT_ITEMS_MAX)
        if isinstance(low, int) and low <= high:
            out["minItems"] = low
        out["maxItems"] = high
        return out
    if kind == "string":
        out = {"type": "string"}
        high = min(int(schema.get("maxLength", ARGUMENT_TEXT_MAX)), ARGUMENT_TEXT_MAX)
        low = schema.get("minLength")
        if isinstance(low, int) and low <= high:
            out["minLength"] = low
        out["maxLength"] = high
        return out
    if kind == "integer":
        out = {"type": "integer"}
        for key in ("minimum", "maximum"):
            if isinstance(schema.get(key), int):
                out[key] = schema[key]
        return out
    if kind in ("number", "boolean", "null"):
        return {"type": kind}
    # Anything at all: text is what a step's argument most often is.
    return {"type": "string", "maxLength": ARGUMENT_TEXT_MAX}


def _object_for_grammar(
    schema: Mapping[str, Any], root: Mapping[str, Any], depth: int
) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):  # a map: keys of the model's choosing, typed values
            return {"type": "object", "additionalProperties": for_grammar(extra, root, depth + 1)}
        # Nothing named: nothing to write. An open object would let a small model go on
        # adding keys until its token limit (a grammar cannot bound their number).
        return {"type": "object", "properties": {}, "additionalProperties": False}
    required = [r for r in schema.get("required") or [] if r in properties]
    return {
        "type": "object",
        "properties": {
            name: for_grammar(value, root, depth + 1) for name, value in properties.items()
        },
        "required": required,
        "additionalProperties": False,
    }


def _resolve(ref: str, root: Mapping[str, Any]) -> dict[str, Any] | None:
    """A local `#/...` reference inside the tool's own schema (others resolve to nothing)."""
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return dict(node) if isinstance(node, Mapping) else None
