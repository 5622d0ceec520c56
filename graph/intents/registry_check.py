"""The registry's check: every problem of a YAML registry, with its line and column.

The file is validated by its pydantic models (:mod:`graph.intents.registry_model`): shapes
are pydantic's checks, the rest its validators, plan templates included (as plans, by
:func:`lam.dag.validate_plan`, against the executors the registry will run with when they
are known). Each error's ``loc`` is walked down the composed YAML
(:mod:`graph.intents.registry_yaml`) to the line and column it was written at, and said in
words that name the intent, rule or ToDo it is about. :meth:`IntentRegistry.load` refuses a
registry with any error; warnings (an intent without English or German rules, a template
without a German version) do not stop loading, and are looked for even in a broken file.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from graph.intents.registry_model import RegistryFile
from graph.intents.registry_values import ERROR_TYPE
from graph.intents.registry_yaml import KEY_PART, Loc, compose, node_at, position
from graph.intents.spec import REQUIRED_LANGUAGES, VARIANTS, RegistrySpec

__all__ = [
    "RegistryError",
    "RegistryProblem",
    "check_registry",
    "check_registry_text",
    "parse_registry",
    "read_registry",
]

# The items of these lists are named in messages by this key: intent 'greet', ToDo 't1'.
_ITEM_LABELS = {"intents": ("intent", "name"), "rules": ("rule", "name"), "todos": ("ToDo", "id")}
# pydantic's errors said the registry's way; the others: "Input should ..." -> "must ...".
_SAYS = {
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "float_type": "must be a number",
    "int_type": "must be a number",
}
_SHOULD = re.compile(r"^\w+ should ")


@dataclass(frozen=True)
class RegistryProblem:
    """One problem in a registry file; line and column are 1-based (None when unknown)."""

    message: str
    line: int | None = None
    column: int | None = None
    severity: Literal["error", "warning"] = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = ""
        if self.line is not None:
            where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
            where += ": "
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}{prefix}{self.message}"


class RegistryError(ValueError):
    """A registry that cannot be loaded; str() is one line naming file, line and problem."""

    def __init__(self, source: str, problems: list[RegistryProblem]) -> None:
        self.source = source
        self.problems = problems
        errors = [p for p in problems if p.is_error] or problems
        first = errors[0] if errors else RegistryProblem("invalid registry")
        where = source
        if first.line is not None:
            where += f":{first.line}"
            if first.column is not None:
                where += f":{first.column}"
        more = len(errors) - 1
        tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more > 0 else ""
        super().__init__(f"intent registry {where}: {first.message}{tail}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _at(node: yaml.Node | None, message: str, severity: str = "error") -> RegistryProblem:
    line, column = position(node) if node is not None else (None, None)
    kind: Literal["error", "warning"] = "warning" if severity == "warning" else "error"
    return RegistryProblem(_one_line(message), line, column, kind)


# -- pydantic's errors, said where they are --------------------------------------------------


def _model_at(loc: Loc) -> tuple[type[BaseModel] | None, str | None]:
    """The model a loc ends in, and the description of the field it names (if any)."""
    current: Any = RegistryFile
    model: type[BaseModel] | None = None
    description = None
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return current, None
            model, description, current = current, field.description, field.annotation
            continue
        args = typing.get_args(current)
        origin = typing.get_origin(current)
        if origin is list and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        model, description = None, None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current, description
    return model, description


def _unwrap(annotation: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None``."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and type(None) in typing.get_args(annotation):
            annotation = args[0]
            continue
        return annotation


def _where(loc: Loc, data: Any) -> tuple[list[str], list[str | int]]:
    """What a loc is in, in words (intent 'greet', rule 'greet.en', ToDo 't1'), and the keys
    from the last of those to it (up to a ``[key]``: the key itself is the subject)."""
    containers: list[str] = []
    path: list[str | int] = []
    value = data
    for part in loc:
        if part == KEY_PART:
            path = path[:-1]
            break
        if isinstance(part, int) and path and path[-1] in _ITEM_LABELS:
            label, key = _ITEM_LABELS[str(path.pop())]
            item = value[part] if isinstance(value, list) and 0 <= part < len(value) else None
            named = item.get(key) if isinstance(item, dict) else None
            text = f"{label} '{named}'" if isinstance(named, str) else label
            if label == "intent" or (label == "rule" and isinstance(named, str)):
                containers = [text]  # a rule's name is unique: it needs no intent
            else:
                containers += [_path(path), text] if path else [text]
            path = []
        else:
            path.append(part)
        value = _child(value, part)
    return containers, path


def _describe(error: ErrorDetails, data: Any) -> str:
    """An error in words: the intent, rule or ToDo it is in, the key, what is wrong."""
    loc = error["loc"]
    containers, path = _where(loc, data)
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "missing" or kind == "extra_forbidden":
        field = str(path.pop()) if path else "?"
        if kind == "missing":
            _, description = _model_at(loc)
            text = f"missing '{field}'"
            if description:
                hint = description[0].lower() + description[1:]
                text += ": " + (hint[:-1] if hint.endswith(".") and hint[-2] != "." else hint)
        else:
            parent, _ = _model_at(loc[:-1])
            allowed = ", ".join(sorted(parent.model_fields)) if parent else ""
            text = f"unknown key '{field}'" + (f" (allowed: {allowed})" if allowed else "")
        return _joined(_name(containers, path), text)
    if kind == ERROR_TYPE and not ctx.get("subject"):
        if KEY_PART in loc:
            containers.append(_path(path))
        text = error["msg"]
        if containers and text.startswith(containers[-1]):
            containers.pop()  # the message names it (lam.dag's name their ToDo)
        return _joined(containers, text)
    # the key, or the item it is (an intent that is not a mapping), or the file itself
    subject = _path(path) or (containers.pop() if containers else "registry")
    shown = error["input"]
    if isinstance(shown, str | int | float | bool):
        subject += f" {_short(shown)}"
    if kind == ERROR_TYPE:
        says = error["msg"]
    elif kind == "too_short" and ctx.get("min_length") == 1:
        says = "must be a non-empty list"
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        says = "must be a non-empty string"
    else:
        says = _SAYS.get(kind) or _SHOULD.sub("must ", error["msg"])
    return _joined(containers, f"{subject} {says}")


def _child(value: Any, part: str | int) -> Any:
    if isinstance(value, dict):
        return value.get(part)
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return None


def _path(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(value: str | int | float | bool) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _name(containers: list[str], path: list[str | int]) -> list[str]:
    return [*containers, _path(path)] if containers or path else ["registry"]


def _joined(where: list[str], text: str) -> str:
    return ": ".join([w for w in where if w] + [text])


# -- warnings: read off the values, broken or not ------------------------------------------


def _warnings(data: Any) -> list[tuple[Loc, str]]:
    """Intents without rules in a required language, templates without a version in one,
    templates of an intent answered directly; locs point at the key."""
    found: list[tuple[Loc, str]] = []
    intents = data.get("intents") if isinstance(data, dict) else None
    for i, intent in enumerate(intents if isinstance(intents, list) else []):
        if not isinstance(intent, dict):
            continue
        name = intent.get("name")
        label = f"intent '{name}'" if isinstance(name, str) else "intent"
        rules = intent.get("rules")
        if isinstance(rules, list) and rules:
            # languages as declared, even on rules broken otherwise (reported already)
            languages = {rule.get("language") for rule in rules if isinstance(rule, dict)}
            for language in REQUIRED_LANGUAGES:
                if language not in languages:
                    found.append((("intents", i, "rules"), f"{label} has no '{language}' rules"))
        templates = intent.get("templates")
        for variant, versions in templates.items() if isinstance(templates, dict) else ():
            if variant not in VARIANTS or not isinstance(versions, dict) or not versions:
                continue
            for language in REQUIRED_LANGUAGES:
                if language not in versions:
                    message = f"{label}: template '{variant}' has no '{language}' version"
                    found.append((("intents", i, "templates", variant), message))
        if intent.get("kind") == "answer":
            for key in ("plan_template", "templates"):
                if intent.get(key):
                    message = (
                        f"{label} is answered directly (kind: answer) and never uses its templates"
                    )
                    found.append((("intents", i, key), message))
    return found


# -- reading and checking ------------------------------------------------------------------


def read_registry(path: str | Path | None) -> tuple[str, str]:
    """The registry's text and a name for it (None: the packaged ``prompts/intents.yaml``)."""
    if path is None:
        import importlib.resources

        resource = importlib.resources.files("prompts").joinpath("intents.yaml")
        return resource.read_text(encoding="utf-8"), str(resource)
    try:
        return Path(path).read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(str(path), [RegistryProblem(f"cannot read the file: {exc}")]) from exc


def _yaml_problem(exc: yaml.YAMLError, what: str) -> RegistryProblem:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return RegistryProblem(_one_line(f"YAML error: {exc}"))
    mark = exc.problem_mark or exc.context_mark
    parts = (exc.problem,) if what == "YAML error" else (exc.context, exc.problem)
    message = f"{what}: " + " ".join(part for part in parts if part)
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    return RegistryProblem(_one_line(message), line, column)


def parse_registry(
    text: str, *, executors: Collection[str] | None = None
) -> tuple[list[RegistryProblem], RegistrySpec | None]:
    """Every problem of a registry's text (in file order), and its spec when it has no error."""
    try:
        located = compose(text)
    except yaml.constructor.ConstructorError as exc:
        return [_yaml_problem(exc, "YAML error")], None
    except yaml.YAMLError as exc:
        return [_yaml_problem(exc, "YAML syntax error")], None
    if located is None:
        return [RegistryProblem("the registry is empty")], None
    problems = [
        _at(node, _joined(_name(*_where(loc, located.value)), why))
        for node, loc, why in located.dropped
    ]
    for loc, message in _warnings(located.value):
        problems.append(_at(node_at(located.root, loc, on_key=True), message, "warning"))
    built: RegistrySpec | None = None
    try:
        checked = RegistryFile.model_validate(located.value, context={"executors": executors})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            ctx = error.get("ctx") or {}
            on_key = bool(ctx.get("on_key")) or error["type"] == "extra_forbidden"
            message = _describe(error, located.value)
            if ctx.get("first"):
                first = node_at(located.root, ("intents", *ctx["first"]))
                message += f" (first on line {position(first)[0]})"
            problems.append(_at(node_at(located.root, error["loc"], on_key=on_key), message))
    else:
        built = checked.to_spec()
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if any(p.is_error for p in problems):
        built = None
    return problems, built


def check_registry_text(
    text: str, *, executors: Collection[str] | None = None
) -> list[RegistryProblem]:
    """Every problem in a registry given as YAML text (errors and warnings), in file order.

    ``executors``: the names a template may use (None: any name; not checked)."""
    problems, _ = parse_registry(text, executors=executors)
    return problems


def check_registry(
    path: str | Path | None = None, *, executors: Collection[str] | None = None
) -> list[RegistryProblem]:
    """Every problem in the registry file at ``path`` (None: the packaged one), in file order.

    An empty list means the registry is clean; problems with ``severity == "warning"`` do not
    stop :meth:`IntentRegistry.load`.
    """
    try:
        text, _ = read_registry(path)
    except RegistryError as exc:
        return exc.problems
    return check_registry_text(text, executors=executors)
