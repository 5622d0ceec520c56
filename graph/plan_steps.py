"""The plan as the LLM writes it, as a person reads it, and as the planner proposes it.

The planner model does not write a `Plan`: it writes numbered steps, a form with little room
for error, which we turn into one. Its JSON Schema, generated from the action catalogue the
call sees (`graph.tools`), is what a grammar-constrained server (llama.cpp, Ollama, OpenAI's
structured outputs) holds the answer to:

    {"goal": "...", "steps": [{"title": "...", "description": "...", "tool": "find_files",
                               "arguments": {"query": "tax"}, "after": [],
                               "requires_approval": false}]}

- a step is known by its position (1, 2, ...); `after` lists the steps it needs, by number,
  and we make the ids (`t1`, `t2`, ...) and `depends_on` from that. No id to invent, to
  mistype or to repeat; a step that names itself is read as not naming itself;
- `tool` is one of the catalogue's names: a tool (an agent's, an MCP server's, a file's) or
  an executor for a free-form step (`llm`, `desktop`, `human`, ...); nothing else;
- each name comes with its own `arguments` object, the tool's schema (bounded: strings have
  a length limit, arrays an item limit, objects no keys of their own), so grammar-constrained
  decoding cannot name an unknown tool or argument, nor leave out a required one;
- a top-level argument may instead be `{"$step": N}`: the output of step N, which the step
  then depends on (`ToDo.tool` holds `{"$step": "tN"}`, resolved when the step runs);
- strings are non-empty where a ToDo needs them, and bounded; so are the lists.

A step naming a tool becomes a ToDo with `tool` set, run by the tool's executor; a step
naming an executor becomes a free-form ToDo of it, its arguments its `inputs`.
`plan_json_schema` builds the schema for one catalogue and plan size; `PlanDraft` reads the
answer (leniently: the tools and their arguments are checked by `check`, for the servers
that do not hold an answer to the schema).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Annotated, Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, create_model

from graph import lamlog
from graph.approval import declared_record
from graph.effects import Effect
from graph.services import Services
from graph.state import PlannerState
from graph.telemetry import trace_metadata
from graph.tools.catalogue import Catalogue, Entry
from graph.tools.narrowing import narrow
from graph.tools.sources import tenant_of
from lam import Plan, ToDo, ToolCall
from lam.tools import STEP_REFERENCE, step_reference

GOAL_MAX = 160
TITLE_MAX = 60
DESCRIPTION_MAX = 240
#: Bounds on what a grammar lets the model write into arguments.
ARGUMENT_TEXT_MAX = 200
ARGUMENT_ITEMS_MAX = 8
_ARGUMENT_DEPTH_MAX = 6
#: At most this many steps in one LLM-written plan (fewer if `max_todos` says so).
STEPS_MAX = 8


class StepDraft(BaseModel):
    """One step of a plan as the planner model writes it."""

    # Whitespace-only strings count as empty; keys the schema does not know are dropped.
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    title: str = Field(min_length=1, max_length=TITLE_MAX, description="a few words")
    description: str = Field(max_length=DESCRIPTION_MAX, description="what exactly to do")
    tool: str = Field(min_length=1, description="the tool, or the executor, that does it")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="the tool's arguments; {\"$step\": N}: step N's output"
    )
    after: list[int] = Field(
        description="the numbers of the earlier steps whose results this step needs"
    )
    requires_approval: bool = Field(False, description="true if a person must approve it")


class PlanDraft(BaseModel):
    """A plan as the planner model writes it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    goal: str = Field(min_length=1, max_length=GOAL_MAX, description="the plan's aim, briefly")
    steps: list[StepDraft] = Field(min_length=1)

    def to_plan(self, catalogue: Catalogue | None = None) -> Plan:
        """The plan: ToDo `tN` is step N; `after` numbers become `depends_on` ids."""
        ids = [f"t{n}" for n in range(1, len(self.steps) + 1)]
        return Plan(goal=self.goal, todos=_todos(self.steps, ids, ids, catalogue))


class RemainingSteps(BaseModel):
    """The steps a replanning round adds (none: the goal cannot be reached another way)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    steps: list[StepDraft] = Field(default_factory=list)

    def to_todos(
        self, done: Sequence[ToDo], taken: Collection[str], catalogue: Catalogue | None = None
    ) -> list[ToDo]:
        """New ToDos after the `done` ones (steps 1..k); their ids avoid every id in `taken`."""
        fresh = _fresh_ids(len(self.steps), taken)
        return _todos(self.steps, [t.id for t in done] + fresh, fresh, catalogue)


def _fresh_ids(count: int, taken: Collection[str]) -> list[str]:
    ids: list[str] = []
    n = 0
    while len(ids) < count:
        n += 1
        if f"t{n}" not in taken:
            ids.append(f"t{n}")
    return ids


def _step_id(number: Any, numbered: list[str]) -> str:
    """The id of step `number` (1-based); a number past the end stays visible as a
    dependency nobody has, `step-N` (`check` names it)."""
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= len(numbered):
        return numbered[number - 1]
    return f"step-{number}"


def _with_ids(value: Any, numbered: list[str], found: list[str]) -> Any:
    """Arguments with each `{"$step": N}` turned into `{"$step": "tN"}` (ids into `found`)."""
    if isinstance(value, dict):
        if len(value) == 1 and STEP_REFERENCE in value:
            ref = _step_id(value[STEP_REFERENCE], numbered)
            found.append(ref)
            return {STEP_REFERENCE: ref}
        return {k: _with_ids(v, numbered, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_ids(v, numbered, found) for v in value]
    return value


def _todos(
    steps: Sequence[StepDraft],
    numbered: list[str],
    own: list[str],
    catalogue: Catalogue | None,
) -> list[ToDo]:
    """ToDos for `steps` with ids `own`; step numbers in `after` index `numbered` (from 1).

    A step's references to other steps' outputs are dependencies too. A step naming a tool
    of the catalogue runs on the tool's executor; any other name is taken as an executor's
    (`check` names the ones that are neither).
    """
    todos = []
    for step, todo_id in zip(steps, own, strict=True):
        referred: list[str] = []
        arguments = _with_ids(step.arguments, numbered, referred)
        depends_on: list[str] = []
        for dep in [_step_id(n, numbered) for n in step.after] + referred:
            # One that names the step itself means nothing and is dropped.
            if dep != todo_id and dep not in depends_on:
                depends_on.append(dep)
        entry = catalogue.tool(step.tool) if catalogue is not None else None
        common: dict[str, Any] = {
            "id": todo_id,
            "title": step.title,
            "description": step.description,
            "depends_on": depends_on,
            "requires_approval": step.requires_approval,
        }
        if entry is None:
            todos.append(ToDo(**common, executor=step.tool, inputs=arguments))
        else:
            tool = ToolCall(name=step.tool, arguments=arguments)
            todos.append(ToDo(**common, executor=entry.executor, tool=tool))
    return todos


def written_step(raw: Mapping[str, Any], number: int, max_steps: int, catalogue: Catalogue) -> ToDo:
    """Step `number` of a plan still being written, as its ToDo (`t<number>`), read like
    `PlanDraft.to_plan` reads it; `after` numbers up to `max_steps` are ids already.

    Raises pydantic's `ValidationError` for a step that is no step.
    """
    step = _step_model(max_steps).model_validate(raw)
    ids = [f"t{n}" for n in range(1, max_steps + 1)]
    return _todos([step], ids, [f"t{number}"], catalogue)[0]


@functools.lru_cache(maxsize=64)
def _step_model(highest: int) -> type[StepDraft]:
    number = Annotated[int, Field(ge=1, le=highest)]
    return create_model(
        "Step",
        __base__=StepDraft,
        after=(
            list[number],
            Field(
                max_length=max(highest - 1, 0),
                description="the numbers of the earlier steps whose results this step needs",
            ),
        ),
    )


@functools.lru_cache(maxsize=64)
def plan_draft_model(max_steps: int) -> type[PlanDraft]:
    """`PlanDraft` with at most `max_steps` steps (tools are checked by `check`)."""
    step = _step_model(max_steps)
    return create_model(
        "PlanDraft",
        __base__=PlanDraft,
        __doc__=PlanDraft.__doc__,
        steps=(list[step], Field(min_length=1, max_length=max_steps)),  # type: ignore[valid-type]
    )


@functools.lru_cache(maxsize=64)
def remaining_steps_model(highest: int, max_steps: int) -> type[RemainingSteps]:
    """`RemainingSteps`: at most `max_steps` steps numbered up to `highest` (done ones first)."""
    step = _step_model(highest)
    return create_model(
        "RemainingSteps",
        __base__=RemainingSteps,
        __doc__=RemainingSteps.__doc__,
        steps=(list[step], Field(default_factory=list, max_length=max_steps)),  # type: ignore[valid-type]
    )


# -- the JSON Schema the model is held to -----------------------------------------------------

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


def max_steps(max_todos: int) -> int:
    return max(1, min(STEPS_MAX, max_todos))


def draft_json(plan: Plan) -> str:
    """A plan in the form the planner model writes (steps by number), for a repair prompt."""
    position = {todo.id: n for n, todo in enumerate(plan.todos, 1)}

    def number(dep: str) -> int | None:
        if dep in position:
            return position[dep]
        tail = dep.rsplit("-", 1)[-1].lstrip("t")
        return int(tail) if tail.isdigit() else None

    def numbered(value: Any) -> Any:
        ref = step_reference(value)
        if ref is not None:
            return {STEP_REFERENCE: number(ref) or ref}
        if isinstance(value, dict):
            return {k: numbered(v) for k, v in value.items()}
        if isinstance(value, list):
            return [numbered(v) for v in value]
        return value

    steps = [
        {
            "title": t.title,
            "description": t.description,
            "tool": t.tool.name if t.tool is not None else t.executor,
            "arguments": numbered(t.tool.arguments if t.tool is not None else t.inputs),
            "after": [n for n in map(number, t.depends_on) if n is not None],
            "requires_approval": t.requires_approval,
        }
        for t in plan.todos
    ]
    return json.dumps({"goal": plan.goal, "steps": steps}, ensure_ascii=False, default=str)


async def planning_catalogue(
    services: Services, config: RunnableConfig, request: str, plan: Plan | None = None
) -> Catalogue:
    """The catalogue a planning call of this run shows the model: the run's tenant's, with
    at most `planner_max_tools` tools, those closest to the request (and those `plan`, the
    plan under repair, already names)."""
    full = await services.tools.catalogue(tenant_of(config))
    named = [t.tool.name for t in plan.todos if t.tool is not None] if plan is not None else []
    return narrow(full, request, services.settings.planner_max_tools, keep=named)


def current_plan(state: PlannerState) -> Plan:
    """The turn's plan, for a step that runs only once there is one (already validated)."""
    plan = state.get("plan")
    if plan is None:
        raise RuntimeError("no plan in the state")
    return plan


def catalogue_listing(catalogue: Catalogue) -> str:
    """The catalogue for a planner prompt: per entry, what it does, its arguments, its effect."""
    return "\n".join(entry_line(entry) for entry in catalogue)


_EFFECT_WORDS = {"none": "changes nothing", "read": "only reads"}
_ARGUMENT_TEXT_SHOWN = 100


def entry_line(entry: Entry) -> str:
    """One catalogue entry as a line of the planner's prompt."""
    tool = entry.tool
    parts = [f"- {tool.name}: {tool.description.strip() or '(no description)'}"]
    properties = tool.input_schema.get("properties")
    required = set(tool.input_schema.get("required") or [])
    if isinstance(properties, dict) and properties:
        shown = []
        for name, schema in properties.items():
            schema = schema if isinstance(schema, dict) else {}
            kind = schema.get("type") or (
                "one of " + "/".join(map(str, schema["enum"])) if "enum" in schema else "any"
            )
            need = ", required" if name in required else ""
            text = str(schema.get("description") or "").strip()
            if len(text) > _ARGUMENT_TEXT_SHOWN:
                text = text[: _ARGUMENT_TEXT_SHOWN - 1] + "…"
            shown.append(f"{name} ({kind}{need})" + (f": {text}" if text else ""))
        parts.append("Arguments: " + "; ".join(shown) + ".")
    else:
        parts.append("Arguments: {}.")
    if tool.returns:
        parts.append(f"Returns {tool.returns.rstrip('.')}.")
    effect = _EFFECT_WORDS.get(tool.effect, f"effect: {tool.effect}, needs the person's approval")
    parts.append(f"[{effect}]")
    return " ".join(parts)


def plan_text(plan: Plan) -> str:
    """The plan in a few lines of plain text (chat view, CLI, LLM prompts)."""
    lines = [f"Plan: {plan.goal}"]
    for todo in plan.todos:
        after = f" (after {', '.join(todo.depends_on)})" if todo.depends_on else ""
        flag = " [needs approval]" if todo.requires_approval else ""
        status = "" if todo.status == "pending" else f" — {todo.status}"
        runs = f"{todo.executor}: {todo.tool.name}" if todo.tool is not None else todo.executor
        lines.append(f"{todo.id}. {todo.title} [{runs}]{after}{flag}{status}")
    return "\n".join(lines)


def sentences(items: Iterable[str]) -> str:
    """Problems as one line: "a; b; c." (each item's own full stop dropped, one at the end)."""
    parts = [item.strip().rstrip(".").strip() for item in items]
    parts = [part for part in parts if part]
    return "; ".join(parts) + "." if parts else ""


def proposal(
    state: PlannerState,
    config: RunnableConfig,
    plan: Plan,
    *purpose: object,
    declared: Mapping[str, Effect] | None = None,
) -> dict[str, Any]:
    """The state update that proposes `plan` to the requester (`purpose` keys its message id).

    `declared`: the effects a trusted template declared for its steps, kept with the
    proposal's id (`plan_effects`) so that `approve` can check the plan again by them.
    """
    cid = lamlog.conversation_id(state, config)
    propose = lamlog.planner(state, config).propose(
        lamlog.requester(state),
        plan,
        message_id=lamlog.stable_id(cid, "propose", lamlog.current_request(state)["id"], *purpose),
        metadata=trace_metadata(),  # whoever approves can continue the trace
    )
    return {
        "plan": plan,
        "plan_problems": [],
        "rejected_answer": None,
        "plan_effects": declared_record(propose.id, declared or {}),
        "lam": [propose.to_dict()],
        "messages": [AIMessage(plan_text(plan))],
    }
