"""The registry's check: every problem of a YAML registry, with its line and column.

The composed YAML nodes are walked (not the loaded values), so each problem keeps the place
it was written. Plan templates are checked as plans by :func:`lam.dag.validate_plan`, against
the executors the registry will run with when they are known. :meth:`IntentRegistry.load`
refuses a registry with any error; warnings (an intent without English or German rules, a
template without a German version) do not stop loading.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from graph.effects import Effect, describe_effects, is_effect
from graph.intents.spec import (
    DEFAULT_CLASSIFIER_MARGIN,
    DEFAULT_CLASSIFIER_SUPPORT,
    DEFAULT_CLASSIFIER_THRESHOLD,
    DEFAULT_MARGIN,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_REPLY,
    READ_EFFECTS,
    REGISTRY_VERSION,
    REQUIRED_LANGUAGES,
    VARIANTS,
    ClassifierSpec,
    IntentKind,
    IntentSpec,
    RegistrySpec,
    RuleSpec,
    TemplateSpec,
)
from graph.intents.text import bounded, compile_any, fold, fold_pattern
from lam import Plan
from lam.dag import PlanProblem, validate_plan

__all__ = [
    "RegistryError",
    "RegistryProblem",
    "check_registry",
    "check_registry_text",
    "parse_registry",
    "read_registry",
]

# libyaml's parser when PyYAML has it: ten times faster on the packaged registry, which
# `intents explain` reads on every start. Its nodes carry the same line marks.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESERVED_INTENTS = frozenset({"unknown"})
_INTENT_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_LANGUAGE = re.compile(r"[a-z]{2}\Z")
_ACT = re.compile(r"[a-z][a-z0-9_]*\Z")
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")
_TOP_KEYS = frozenset(
    {
        "version",
        "description",
        "min_confidence",
        "margin",
        "abstain_patterns",
        "classifier",
        "out_of_scope",
        "intents",
    }
)
_CLASSIFIER_KEYS = frozenset({"threshold", "margin", "support"})
_INTENT_KEYS = frozenset(
    {
        "name",
        "description",
        "kind",
        "rules",
        "plan_template",
        "templates",
        "examples",
        "phrases",
        "replies",
        "labels",
    }
)
_RULE_KEYS = frozenset({"name", "language", "keywords", "patterns", "negative", "weight"})
_PLAN_KEYS = frozenset({"goal", "todos"})
_TODO_KEYS = frozenset(
    {
        "id",
        "title",
        "description",
        "executor",
        "inputs",
        "depends_on",
        "requires_approval",
        "effect",
        # a tool the step runs ({name, arguments}); its effect then comes from the catalogue
        "tool",
    }
)


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


def _pos(node: yaml.Node) -> tuple[int, int]:
    mark = node.start_mark
    return mark.line + 1, mark.column + 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Checker:
    """Validates a composed registry document and builds the specs when it is sound."""

    def __init__(self, executors: Collection[str] | None) -> None:
        self.problems: list[RegistryProblem] = []
        self.executors = executors
        self._loader = yaml.SafeLoader("")

    def add(self, node: yaml.Node | None, message: str, *, warning: bool = False) -> None:
        line, column = _pos(node) if node is not None else (None, None)
        severity: Literal["error", "warning"] = "warning" if warning else "error"
        self.problems.append(RegistryProblem(_one_line(message), line, column, severity))

    def value(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    # -- shapes --------------------------------------------------------------------------

    def mapping(
        self, node: yaml.Node, what: str, allowed: frozenset[str] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Keys to (key node, value node); reports non-mappings, unknown and repeated keys.

        ``allowed`` None: any string key (a map of languages, acts, ...)."""
        if not isinstance(node, yaml.MappingNode):
            self.add(node, f"{what} must be a mapping")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.add(key_node, f"{what}: keys must be strings, not {key!r}")
                continue
            if key in out:
                self.add(key_node, f"{what}: key '{key}' appears twice")
                continue
            if allowed is not None and key not in allowed:
                self.add(
                    key_node,
                    f"{what}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})",
                )
                continue
            out[key] = (key_node, value_node)
        return out

    def string(self, node: yaml.Node, what: str, *, one_line: bool = False) -> str | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not value.strip():
            self.add(node, f"{what} must be a non-empty string")
            return None
        if one_line and "\n" in value.strip():
            self.add(node, f"{what} must be one line")
        return value.strip() if one_line else value

    def number(self, node: yaml.Node, what: str) -> float | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.add(node, f"{what} must be a number")
            return None
        return float(value)

    def fraction(
        self, node: yaml.Node, what: str, default: float, *, zero_ok: bool, one_ok: bool
    ) -> float:
        """A number in (0, 1] / [0, 1) / ... as the flags say; the default when it is not."""
        value = self.number(node, what)
        if value is None:
            return default
        low_ok = value >= 0.0 if zero_ok else value > 0.0
        high_ok = value <= 1.0 if one_ok else value < 1.0
        if not (low_ok and high_ok):
            interval = ("[" if zero_ok else "(") + "0, 1" + ("]" if one_ok else ")")
            self.add(node, f"{what} {value} must be in {interval}")
            return default
        return value

    def string_list(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
        if isinstance(node, yaml.ScalarNode):
            # a single string is accepted for one keyword/pattern
            one = self.string(node, what)
            return [(node, one)] if one is not None else []
        if not isinstance(node, yaml.SequenceNode):
            self.add(node, f"{what} must be a list of strings")
            return []
        out = []
        for item in node.value:
            text = self.string(item, f"{what} entry")
            if text is not None:
                out.append((item, text))
        return out

    def per_language(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping whose keys are language codes (``en``, ``de``, ...)."""
        keys = self.mapping(node, what, None) or {}
        for language, (key_node, _) in list(keys.items()):
            if not _LANGUAGE.match(language):
                self.add(key_node, f"{what}: '{language}' is not a language code (en, de, ...)")
                del keys[language]
        return keys

    def utterances(self, node: yaml.Node, what: str) -> dict[str, tuple[str, ...]]:
        """Example utterances per language (``{en: [...], de: [...]}``)."""
        out: dict[str, tuple[str, ...]] = {}
        for language, (_, value_node) in self.per_language(node, what).items():
            out[language] = tuple(
                text.strip() for _, text in self.string_list(value_node, f"{what} {language}")
            )
        return out

    def regexes(self, items: list[tuple[yaml.Node, str]], what: str) -> list[str]:
        """Folded regexes that compile; reports each one that does not, with re's message."""
        out = []
        for node, text in items:
            regex = fold_pattern(text)
            try:
                # alone first, so re's "at position N" counts in the pattern as written
                re.compile(regex, re.IGNORECASE)
            except re.error as exc:
                self.add(node, f"{what} {text!r} is not a valid regular expression: {exc}")
                continue
            if _NUMBERED_BACKREF.search(regex):
                # patterns are joined into one alternation: group numbers would shift
                self.add(
                    node,
                    f"{what} {text!r}: numbered back-references are not supported "
                    "(name the group: (?P<x>...) and (?P=x))",
                )
                continue
            try:
                re.compile(bounded(f"(?:{regex})"), re.IGNORECASE)
            except re.error as exc:
                self.add(node, f"{what} {text!r} cannot be embedded in a rule: {exc}")
                continue
            out.append(regex)
        return out

    # -- the document ------------------------------------------------------------------------

    def document(self, root: yaml.Node | None) -> RegistrySpec | None:
        if root is None:
            self.add(None, "the registry is empty")
            return None
        top = self.mapping(root, "registry", _TOP_KEYS)
        if top is None:
            return None
        if "version" not in top:
            self.add(root, f"registry: missing 'version' (use version: {REGISTRY_VERSION})")
        else:
            version_node = top["version"][1]
            version = self.value(version_node)
            if version != REGISTRY_VERSION or isinstance(version, bool):
                self.add(
                    version_node,
                    f"registry version {version!r} is not supported (use {REGISTRY_VERSION})",
                )
        min_confidence = DEFAULT_MIN_CONFIDENCE
        if "min_confidence" in top:
            min_confidence = self.fraction(
                top["min_confidence"][1],
                "min_confidence",
                min_confidence,
                zero_ok=False,
                one_ok=True,
            )
        margin = DEFAULT_MARGIN
        if "margin" in top:
            margin = self.fraction(top["margin"][1], "margin", margin, zero_ok=True, one_ok=False)
        classifier = ClassifierSpec()
        if "classifier" in top:
            classifier = self.classifier(top["classifier"][1])
        abstain: list[str] = []
        if "abstain_patterns" in top:
            abstain = self.regexes(
                self.string_list(top["abstain_patterns"][1], "abstain pattern"), "abstain pattern"
            )
        out_of_scope: dict[str, tuple[str, ...]] = {}
        if "out_of_scope" in top:
            out_of_scope = self.utterances(top["out_of_scope"][1], "out_of_scope")
        if "intents" not in top:
            self.add(root, "registry: missing 'intents' (a list of intents)")
            return None
        intents_node = top["intents"][1]
        if not isinstance(intents_node, yaml.SequenceNode) or not intents_node.value:
            self.add(intents_node, "intents must be a non-empty list")
            return None
        intents: list[IntentSpec] = []
        seen_intents: dict[str, int] = {}
        seen_rules: dict[str, int] = {}
        for item in intents_node.value:
            spec = self.intent(item, seen_intents, seen_rules)
            if spec is not None:
                intents.append(spec)
        self.examples_once(intents, out_of_scope, intents_node)
        return RegistrySpec(
            intents=tuple(intents),
            min_confidence=min_confidence,
            margin=margin,
            abstain_patterns=tuple(abstain),
            classifier=classifier,
            out_of_scope=out_of_scope,
        )

    def classifier(self, node: yaml.Node) -> ClassifierSpec:
        keys = self.mapping(node, "classifier", _CLASSIFIER_KEYS) or {}
        threshold = DEFAULT_CLASSIFIER_THRESHOLD
        margin = DEFAULT_CLASSIFIER_MARGIN
        if "threshold" in keys:
            threshold = self.fraction(
                keys["threshold"][1], "classifier threshold", threshold, zero_ok=False, one_ok=True
            )
        if "margin" in keys:
            margin = self.fraction(
                keys["margin"][1], "classifier margin", margin, zero_ok=True, one_ok=False
            )
        support = DEFAULT_CLASSIFIER_SUPPORT
        if "support" in keys:
            support = self.fraction(
                keys["support"][1], "classifier support", support, zero_ok=True, one_ok=True
            )
        return ClassifierSpec(threshold=threshold, margin=margin, support=support)

    def examples_once(
        self,
        intents: list[IntentSpec],
        out_of_scope: dict[str, tuple[str, ...]],
        node: yaml.Node,
    ) -> None:
        """An utterance taught as two intents (or as one and as out of scope) is an error."""
        owner: dict[str, str] = {}
        labelled = [(spec.name, spec.examples) for spec in intents]
        labelled.append(("out_of_scope", out_of_scope))
        for name, examples in labelled:
            for texts in examples.values():
                for text in texts:
                    key = fold(text)
                    first = owner.setdefault(key, name)
                    if first != name:
                        self.add(node, f"example {text!r} is given for {first} and for {name}")

    def intent(
        self, node: yaml.Node, seen_intents: dict[str, int], seen_rules: dict[str, int]
    ) -> IntentSpec | None:
        keys = self.mapping(node, "intent", _INTENT_KEYS)
        if keys is None:
            return None
        name: str | None = None
        if "name" not in keys:
            self.add(node, "intent: missing 'name'")
        else:
            name_node = keys["name"][1]
            name = self.string(name_node, "intent name")
            if name is not None:
                if not _INTENT_NAME.match(name):
                    self.add(name_node, f"intent name {name!r} must look like 'web_search'")
                elif name in _RESERVED_INTENTS:
                    self.add(name_node, f"intent name {name!r} is reserved")
                if name in seen_intents:
                    self.add(
                        name_node,
                        f"intent '{name}' is defined twice (first on line {seen_intents[name]})",
                    )
                else:
                    seen_intents[name] = _pos(name_node)[0]
        label = f"intent '{name}'" if name else "intent"
        description: str | None = None
        if "description" not in keys:
            self.add(node, f"{label}: missing 'description'")
        else:
            description = self.string(
                keys["description"][1], f"{label}: description", one_line=True
            )
        kind: IntentKind = "plan"
        if "kind" in keys:
            kind_node = keys["kind"][1]
            kind_value = self.value(kind_node)
            if kind_value == "plan" or kind_value == "answer":
                kind = kind_value
            else:
                self.add(kind_node, f"{label}: kind {kind_value!r} must be 'plan' or 'answer'")
        rules: list[RuleSpec] = []
        if "rules" not in keys:
            self.add(node, f"{label}: missing 'rules'")
        else:
            rules = self.rules(keys["rules"], label, seen_rules)
        templates = self.templates(keys, label, kind)
        examples: dict[str, tuple[str, ...]] = {}
        if "examples" in keys:
            examples = self.utterances(keys["examples"][1], f"{label}: examples")
        phrases: dict[str, dict[str, tuple[str, ...]]] = {}
        if "phrases" in keys:
            acts = self.mapping(keys["phrases"][1], f"{label}: phrases", None) or {}
            for act, (act_key, act_node) in acts.items():
                if not _ACT.match(act):
                    self.add(act_key, f"{label}: phrase act {act!r} must look like 'thanks'")
                    continue
                phrases[act] = self.utterances(act_node, f"{label}: phrases {act}")
        replies: dict[str, dict[str, str]] = {}
        if "replies" in keys:
            replies = self.replies(keys["replies"][1], label, set(phrases))
        labels: dict[str, str] = {}
        if "labels" in keys:
            for language, (_, text_node) in self.per_language(
                keys["labels"][1], f"{label}: labels"
            ).items():
                text = self.string(text_node, f"{label}: label {language}", one_line=True)
                if text is not None:
                    labels[language] = text
        if name is None or description is None:
            return None
        return IntentSpec(
            name, description, kind, tuple(rules), templates, examples, phrases, replies, labels
        )

    def rules(
        self, keys: tuple[yaml.Node, yaml.Node], label: str, seen_rules: dict[str, int]
    ) -> list[RuleSpec]:
        key_node, rules_node = keys
        if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
            self.add(rules_node, f"{label}: rules must be a non-empty list")
            return []
        rules = [
            rule
            for rule_node in rules_node.value
            if (rule := self.rule(rule_node, label, seen_rules)) is not None
        ]
        # languages as declared, even on rules broken otherwise (reported already)
        languages = {
            self.value(value_node)
            for rule_node in rules_node.value
            if isinstance(rule_node, yaml.MappingNode)
            for key, value_node in rule_node.value
            if isinstance(key, yaml.ScalarNode) and key.value == "language"
        }
        for language in REQUIRED_LANGUAGES:
            if language not in languages:
                self.add(key_node, f"{label} has no '{language}' rules", warning=True)
        return rules

    def replies(self, node: yaml.Node, label: str, acts: set[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for act, (act_key, act_node) in (
            self.mapping(node, f"{label}: replies", None) or {}
        ).items():
            if act != DEFAULT_REPLY and act not in acts:
                known = ", ".join(sorted(acts | {DEFAULT_REPLY}))
                self.add(act_key, f"{label}: reply for {act!r}, which no phrase says ({known})")
                continue
            out[act] = {}
            for language, (_, text_node) in self.per_language(
                act_node, f"{label}: replies {act}"
            ).items():
                text = self.string(text_node, f"{label}: reply {act} {language}", one_line=True)
                if text is not None:
                    out[act][language] = text
        return out

    def rule(self, node: yaml.Node, label: str, seen: dict[str, int]) -> RuleSpec | None:
        keys = self.mapping(node, f"{label}: rule", _RULE_KEYS)
        if keys is None:
            return None
        ok = True
        name = language = None
        if "name" not in keys:
            self.add(node, f"{label}: rule without a 'name'")
            ok = False
        else:
            name_node = keys["name"][1]
            name = self.string(name_node, f"{label}: rule name")
            if name is not None:
                if name in seen:
                    self.add(
                        name_node, f"rule name '{name}' is used twice (first on line {seen[name]})"
                    )
                else:
                    seen[name] = _pos(name_node)[0]
        what = f"rule '{name}'" if name else f"{label}: rule"
        if "language" not in keys:
            self.add(node, f"{what}: missing 'language' (en, de, ...)")
            ok = False
        else:
            language = self.string(keys["language"][1], f"{what}: language")
        weight: float | None = None
        if "weight" not in keys:
            self.add(node, f"{what}: missing 'weight' (a number in (0, 1])")
        else:
            weight_node = keys["weight"][1]
            weight = self.number(weight_node, f"{what}: weight")
            if weight is not None and not 0.0 < weight <= 1.0:
                self.add(weight_node, f"{what}: weight {weight:g} must be in (0, 1]")
                weight = None
        keywords = (
            self.string_list(keys["keywords"][1], f"{what}: keyword") if "keywords" in keys else []
        )
        patterns = (
            self.string_list(keys["patterns"][1], f"{what}: pattern") if "patterns" in keys else []
        )
        negative = (
            self.string_list(keys["negative"][1], f"{what}: negative pattern")
            if "negative" in keys
            else []
        )
        if not keywords and not patterns:
            self.add(node, f"{what}: needs at least one keyword or pattern")
            ok = False
        for keyword_node, keyword in keywords:
            if not keyword.strip().rstrip("*").strip():
                self.add(keyword_node, f"{what}: empty keyword")
                ok = False
        bad = len(self.problems)
        positive = self.regexes(patterns, f"{what}: pattern")
        vetoes = self.regexes(negative, f"{what}: negative pattern")
        ok = ok and len(self.problems) == bad
        if ok:
            # the rule's patterns are compiled together: e.g. a group name used twice clashes
            for regexes, kind in ((positive, "patterns"), (vetoes, "negative patterns")):
                try:
                    compile_any(regexes)
                except re.error as exc:
                    self.add(node, f"{what}: its {kind} cannot be combined: {exc}")
                    ok = False
        if not ok or name is None or language is None or weight is None:
            return None
        return RuleSpec(
            name=name,
            language=language,
            weight=weight,
            keywords=tuple(k for _, k in keywords),
            patterns=tuple(p for _, p in patterns),
            negative=tuple(n for _, n in negative),
        )

    # -- plan templates ------------------------------------------------------------------

    def templates(
        self, keys: dict[str, tuple[yaml.Node, yaml.Node]], label: str, kind: IntentKind
    ) -> dict[str, dict[str, TemplateSpec]]:
        """``templates: {act|read: {en: PLAN, de: PLAN}}``, or one ``plan_template`` (act, any
        language)."""
        out: dict[str, dict[str, TemplateSpec]] = {}
        if "plan_template" in keys and "templates" in keys:
            self.add(keys["plan_template"][0], f"{label}: use either plan_template or templates")
            return out
        if "plan_template" in keys:
            node = keys["plan_template"][1]
            spec = self.plan_template(node, f"{label}: plan_template", "act")
            if spec is not None:
                out["act"] = {"*": spec}
        elif "templates" in keys:
            variants = self.mapping(keys["templates"][1], f"{label}: templates", None) or {}
            for variant, (variant_key, variant_node) in variants.items():
                if variant not in VARIANTS:
                    self.add(
                        variant_key,
                        f"{label}: template variant '{variant}' must be one of "
                        + ", ".join(VARIANTS),
                    )
                    continue
                versions = self.per_language(variant_node, f"{label}: templates.{variant}")
                for language, (_, plan_node) in versions.items():
                    what = f"{label}: templates.{variant}.{language}"
                    spec = self.plan_template(plan_node, what, variant)
                    if spec is not None:
                        out.setdefault(variant, {})[language] = spec
                for language in REQUIRED_LANGUAGES:
                    if versions and language not in versions:
                        self.add(
                            variant_key,
                            f"{label}: template '{variant}' has no '{language}' version",
                            warning=True,
                        )
        else:
            return out
        if out and kind == "answer":
            key = "plan_template" if "plan_template" in keys else "templates"
            self.add(
                keys[key][0],
                f"{label} is answered directly (kind: answer) and never uses its templates",
                warning=True,
            )
        return out

    def plan_template(self, node: yaml.Node, what: str, variant: str) -> TemplateSpec | None:
        """A template when it is a valid Plan (ids, dependencies, no cycle, executors)."""
        before = len(self.problems)
        keys = self.mapping(node, what, _PLAN_KEYS)
        if keys is None:
            return None
        if "goal" not in keys:
            self.add(node, f"{what}: missing 'goal'")
        else:
            self.string(keys["goal"][1], f"{what}: goal")
        if "todos" not in keys:
            self.add(node, f"{what}: missing 'todos'")
            return None
        todos_node = keys["todos"][1]
        if not isinstance(todos_node, yaml.SequenceNode) or not todos_node.value:
            self.add(todos_node, f"{what}: todos must be a non-empty list")
            return None
        todos = [self.todo(todo_node, what, variant) for todo_node in todos_node.value]
        if len(self.problems) > before:
            return None
        plan_value = self.value(node)
        effects: dict[str, Effect] = {}
        for todo in plan_value["todos"]:
            effect = todo.pop("effect", None)
            if effect is not None:
                effects.setdefault(todo["id"], effect)
        try:
            # the model itself is the last word on what a Plan is (types, empty strings, ...)
            plan = Plan.model_validate(plan_value)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            self.add(node, f"{what} is not a valid Plan: {loc}: {first['msg']}")
            return None
        for problem in validate_plan(plan, executors=self.executors):
            self.plan_problem(problem, todos, what)
        if len(self.problems) > before:
            return None
        return TemplateSpec(plan_value, effects)

    def plan_problem(
        self,
        problem: PlanProblem,
        todos: list[dict[str, tuple[yaml.Node, yaml.Node]] | None],
        what: str,
    ) -> None:
        """Reports one problem validate_plan found, on the line of the key it is about."""
        key = {
            "unknown_dependency": "depends_on",
            "self_dependency": "depends_on",
            "unknown_executor": "executor",
            "duplicate_id": "id",
        }.get(problem.code, "id")
        hits = [t for t in todos if t and "id" in t and self.value(t["id"][1]) == problem.todo_id]
        if problem.code == "duplicate_id":
            hits = hits[1:]  # the id given again, not the first use
        node = None
        if hits:
            found = hits[0]
            node = found[key][1] if key in found else found["id"][1]
            if problem.code == "cycle":
                node = found["id"][0]  # the ToDo's first line
        self.add(node, f"{what}: {problem.message}")

    def todo(
        self, node: yaml.Node, what: str, variant: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        keys = self.mapping(node, f"{what}: ToDo", _TODO_KEYS)
        if keys is None:
            return None
        todo_id: str | None = None
        for required in ("id", "title", "executor"):
            if required not in keys:
                self.add(node, f"{what}: ToDo without '{required}'")
        if "id" in keys:
            todo_id = self.string(keys["id"][1], f"{what}: ToDo id")
        label = f"{what}: ToDo '{todo_id}'" if todo_id else f"{what}: ToDo"
        if "title" in keys:
            self.string(keys["title"][1], f"{label}: title", one_line=True)
        if "description" in keys:
            desc = self.value(keys["description"][1])
            if not isinstance(desc, str):
                self.add(keys["description"][1], f"{label}: description must be a string")
        if "inputs" in keys and not isinstance(keys["inputs"][1], yaml.MappingNode):
            self.add(keys["inputs"][1], f"{label}: inputs must be a mapping")
        if "requires_approval" in keys:
            flag_node = keys["requires_approval"][1]
            if not isinstance(self.value(flag_node), bool):
                self.add(flag_node, f"{label}: requires_approval must be true or false")
        if "effect" in keys:
            effect_node = keys["effect"][1]
            effect = self.value(effect_node)
            if not is_effect(effect):
                self.add(effect_node, f"{label}: effect {effect!r} must be {describe_effects()}")
            elif variant == "read" and effect not in READ_EFFECTS:
                self.add(
                    effect_node,
                    f"{label}: a read template's step may only read (effect read or none), "
                    f"not {effect}",
                )
        elif variant == "read":
            self.add(node, f"{label}: a read template's step must declare effect: read or none")
        deps: list[str] = []
        if "depends_on" in keys:
            dep_list = keys["depends_on"][1]
            if not isinstance(dep_list, yaml.SequenceNode):
                self.add(dep_list, f"{label}: depends_on must be a list of ToDo ids")
            else:
                for dep_node in dep_list.value:
                    dep = self.value(dep_node)
                    if not isinstance(dep, str):
                        self.add(dep_node, f"{label}: depends_on entries must be ToDo ids")
                    else:
                        deps.append(dep)
        executor = self.value(keys["executor"][1]) if "executor" in keys else None
        if executor == "template":
            self.template_text(keys, node, label, deps)
        return keys

    def template_text(
        self,
        keys: dict[str, tuple[yaml.Node, yaml.Node]],
        node: yaml.Node,
        label: str,
        deps: list[str],
    ) -> None:
        """The no-LLM ``template`` executor fills ``{request}`` and ``{<dependency id>}``;
        anything else would reach the person unfilled."""
        inputs = self.value(keys["inputs"][1]) if "inputs" in keys else None
        if not isinstance(inputs, dict) or not isinstance(inputs.get("text"), str):
            self.add(node, f"{label}: a 'template' ToDo needs inputs.text (a string)")
            return
        known = {"request", *deps}
        for placeholder in sorted(set(_PLACEHOLDER.findall(inputs["text"])) - known):
            self.add(
                keys["inputs"][1],
                f"{label}: inputs.text uses {{{placeholder}}}, which is neither {{request}} "
                "nor one of its depends_on",
            )


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


def parse_registry(
    text: str, *, executors: Collection[str] | None = None
) -> tuple[list[RegistryProblem], RegistrySpec | None]:
    """Every problem of a registry's text (in file order), and its spec when it has no error."""
    checker = _Checker(executors)
    try:
        root = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = "YAML syntax error: " + " ".join(
            part for part in (exc.context, exc.problem) if part
        )
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        return [RegistryProblem(_one_line(message), line, column)], None
    except yaml.YAMLError as exc:
        return [RegistryProblem(_one_line(f"YAML error: {exc}"))], None
    try:
        built = checker.document(root)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        checker.problems.append(
            RegistryProblem(
                _one_line(f"YAML error: {exc.problem}"),
                mark.line + 1 if mark else None,
                mark.column + 1 if mark else None,
            )
        )
        built = None
    problems = sorted(checker.problems, key=lambda p: (p.line or 0, p.column or 0))
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
