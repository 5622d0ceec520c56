"""The JSON Schema a planner model's answer is held to, generated from the action catalogue.

A grammar-constrained server (llama.cpp's `json_schema`, Ollama's `format`, OpenAI's
structured outputs) turns it into the only answers the model can write: a step is one of a
variant per catalogue entry, each naming its entry (`"tool": {"const": ...}`, written first,
so a grammar commits to one variant at once) and that entry's own `arguments` object,
narrowed by `for_grammar` to what a grammar can hold. The answer is read by
`graph.plan_steps` (`PlanDraft`, `RemainingSteps`), whose pydantic schema this extends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graph.plan_steps import plan_draft_model, remaining_steps_model
from graph.tools.catalogue import Catalogue, Entry
from lam.tools import STEP_REFERENCE

#: Bounds on what a grammar lets the model write into arguments.
ARGUMENT_TEXT_MAX = 200
ARGUMENT_ITEMS_MAX = 8
_ARGUMENT_DEPTH_MAX = 6
_STEP_OUTPUT_DEF = "step_output"


def plan_json_schema(
    catalogue: Catalogue,
    max_steps: int,
    min_steps: int = 1,
    follows: Sequence[bool] = (),
    shortlists: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """The schema of a `PlanDraft` whose steps each name one entry of `catalogue`: at least
    `min_steps` of them (a request's detected actions, one step each; capped by `max_steps`),
    so that a grammar cannot end the plan before every action has had its step.

    `follows[N-1]` true: the request's action N needs what action N-1 gives
    (`graph.intents.compound`), so step N (the step for action N, when the plan gives each
    action its step in order) lists exactly step N-1 as its `after`; its arguments may still
    name other steps' outputs, which it then waits for too.

    `shortlists[N-1]`, the tools closest to action N (`graph.tools.narrowing.
    action_shortlists`): step N names one of them or an executor (a free-form step), not
    any tool of the catalogue; an empty shortlist leaves step N free. Steps past the
    actions are free too."""
    model = plan_draft_model(max_steps)
    base = model.model_json_schema()
    least = min(max(1, min_steps), max_steps)
    return _with_steps(base, catalogue, 1, max_steps, least, "PlanDraft", follows, shortlists)


def remaining_json_schema(catalogue: Catalogue, highest: int, max_steps: int) -> dict[str, Any]:
    """The schema of a replanning round's `RemainingSteps` for `catalogue`: its steps are
    numbered on after the done ones (up to `highest`) and may use any of those."""
    base = remaining_steps_model(highest, max_steps).model_json_schema()
    first = highest - max_steps + 1
    return _with_steps(base, catalogue, first, max_steps, 0, "RemainingSteps")


def _with_steps(
    base: dict[str, Any],
    catalogue: Catalogue,
    first: int,
    count: int,
    least: int,
    title: str,
    follows: Sequence[bool] = (),
    shortlists: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """`base` (pydantic's schema) with its steps a list of `least` to `count` steps, the
    first numbered `first`: step N is one of a variant per catalogue entry, and what it may
    name as its `after` and its arguments' `{"$step": M}` is an earlier step (M < N).

    A list whose items differ by position is a tuple (`prefixItems`, which llama.cpp's
    json-schema-to-grammar reads as a list of exactly that many items, ignoring
    `minItems`/`maxItems`), so the steps are one of a tuple per length. Cycles and
    references to a step that is not (yet) there cannot be written. (OpenAI's strict
    structured outputs do not take `prefixItems`; we do not ask for strict mode.)
    """
    defs: dict[str, Any] = dict(base.pop("$defs", {}))
    step = defs.pop("Step")
    for key in ("title", "description"):
        defs[f"step_{key}"] = {k: v for k, v in step["properties"][key].items() if k != "title"}
    positions = []
    for number in range(first, first + count):
        earlier = list(range(1, number))
        if earlier:
            defs[f"{_STEP_OUTPUT_DEF}_{number}"] = {
                "type": "object",
                "properties": {STEP_REFERENCE: {"enum": earlier}},
                "required": [STEP_REFERENCE],
                "additionalProperties": False,
            }
        defs[f"step_{number}_after"] = {
            "type": "array",
            "description": "the numbers of the earlier steps whose results this step needs",
            "items": {"enum": earlier} if earlier else {"type": "integer"},
            "maxItems": len(earlier),
        }
        follows_here = bool(earlier) and number - 1 < len(follows) and follows[number - 1]
        if follows_here:
            defs[f"step_{number}_after"].update(items={"const": number - 1}, minItems=1, maxItems=1)
        variants = []
        shortlist = shortlists[number - 1] if number - 1 < len(shortlists) else ()
        listed = [
            (n, entry)
            for n, entry in enumerate(catalogue, 1)
            if entry.kind == "executor" or entry.name in shortlist
        ]
        for n, entry in listed if shortlist and listed else enumerate(catalogue, 1):
            name = f"step_{number}_{n}"
            defs[name] = {
                "type": "object",
                "description": f"step {number}: {entry.name}",
                # `tool` first: once the model has written it, one variant is left to follow
                # (a grammar that kept every variant alive through the title and description
                # slowed llama.cpp's sampling down tenfold).
                "properties": {
                    "tool": {"const": entry.name},
                    "title": {"$ref": "#/$defs/step_title"},
                    "description": {"$ref": "#/$defs/step_description"},
                    "arguments": arguments_schema(
                        entry, number if earlier else None, number - 1 if follows_here else None
                    ),
                    "after": {"$ref": f"#/$defs/step_{number}_after"},
                    "requires_approval": {"type": "boolean"},
                },
                "required": ["tool", "title", "description", "arguments", "after"],
                "additionalProperties": False,
            }
            variants.append({"$ref": f"#/$defs/{name}"})
        defs[f"step_{number}"] = {"anyOf": variants}
        positions.append({"$ref": f"#/$defs/step_{number}"})
    steps = base["properties"]["steps"]
    base["properties"]["steps"] = {
        "description": "the steps, in order: step N may use only steps before it",
        "anyOf": [
            {
                "type": "array",
                "prefixItems": positions[:length],
                "minItems": length,
                "maxItems": length,
            }
            for length in range(max(least, 0), count + 1)
        ],
    }
    if "default" in steps:
        base["properties"]["steps"]["default"] = steps["default"]
    base["title"] = title
    base["additionalProperties"] = False
    base["$defs"] = defs
    return base


def step_variants(schema: Mapping[str, Any], number: int) -> list[dict[str, Any]]:
    """The variants (one per catalogue entry) that step `number` of `schema` may be."""
    defs = schema["$defs"]
    return [defs[v["$ref"].rsplit("/", 1)[1]] for v in defs[f"step_{number}"]["anyOf"]]


def arguments_schema(
    entry: Entry, number: int | None = None, uses: int | None = None
) -> dict[str, Any]:
    """A tool's arguments' schema as the grammar holds the model to it (see `for_grammar`);
    for step `number` (not the first), each top-level argument may be `{"$step": M}`, the
    output of an earlier step M, instead.

    `uses`: the step takes step `uses`'s output as one of its arguments (the action it does
    follows that one's: `plan_json_schema`'s `follows`), the model choosing which: one
    variant per argument, that argument `{"$step": uses}` (a tool without arguments has
    nowhere to take it and is left as it is)."""
    schema = entry.tool.input_schema
    bounded = for_grammar(schema, schema)
    properties = bounded.get("properties")
    if number is None or not isinstance(properties, dict):
        return bounded
    bounded["properties"] = {
        name: {"anyOf": [value, {"$ref": f"#/$defs/{_STEP_OUTPUT_DEF}_{number}"}]}
        for name, value in properties.items()
    }
    if uses is None or not properties:
        return bounded
    output = {
        "type": "object",
        "properties": {STEP_REFERENCE: {"const": uses}},
        "required": [STEP_REFERENCE],
        "additionalProperties": False,
    }
    required = list(bounded.get("required") or [])
    return {
        "anyOf": [
            {
                **bounded,
                "properties": {
                    key: output if key == name else value
                    for key, value in bounded["properties"].items()
                },
                "required": [key for key in properties if key in required or key == name],
            }
            for name in properties
        ]
    }


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
