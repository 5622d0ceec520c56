"""The catalogue and the plan as text: a planner prompt's tool lines, a plan for people."""

from __future__ import annotations

from collections.abc import Iterable

from graph.tools.catalogue import Catalogue, Entry
from lam import Plan


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
