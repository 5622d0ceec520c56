"""The intent registry and the rules engine: classify a request without calling any LLM.

The registry is a YAML file (the default one is ``prompts/intents.yaml``)::

    version: 1
    min_confidence: 0.6        # optional, default 0.6
    margin: 0.2                # optional, default 0.2
    abstain_patterns: ['(and|then) (send|book)']   # optional: any match = the rules abstain
    intents:
      - name: reminder
        description: Set reminders and keep a to-do list.   # one line, shown to the LLM and users
        kind: plan                                          # plan | answer
        rules:
          - name: reminder.en.remind
            language: en
            weight: 0.95                                    # in (0, 1]
            keywords: [reminder, to-do*]                    # phrases; trailing * = any ending
            patterns: ['remind (me|us)']                    # regular expressions
            negative: ['remind me,? (what|who)']            # any match vetoes this rule
        plan_template: {goal: ..., todos: [...]}            # optional; "{request}" is filled in

Matching
    The request and every keyword/pattern are *folded* the same way: Unicode NFC, case-folded,
    umlauts spelled out (ä→ae, ö→oe, ü→ue, ß→ss) and typographic apostrophes made plain. So
    "Öffne", "oeffne" and "ÖFFNE" are the same word, and rules can be written either way. Every
    keyword and pattern is wrapped in word boundaries (``(?<!\\w)`` … ``(?!\\w)``) and searched
    case-insensitively. A rule *matches* when any of its keywords or patterns matches and none
    of its ``negative`` patterns does (a negative vetoes only its own rule).

Scoring (precision over recall)
    1. Per intent and language, the weights of the matching rules combine by noisy-or:
       ``1 - prod(1 - weight)``; independent evidence adds up, but never past 1. The intent's
       score is the best of its languages: cognates ("Mail", "PDFs", "Meeting") match the
       English and the German rules alike, and the same word must not count twice.
    2. The best-scoring intent is the candidate; ties break by name (deterministic).
    3. The rules *abstain* (``intent=None``) when nothing matched, when the best score is below
       the registry's ``min_confidence``, when the best score leads the runner-up by less
       than ``margin`` (the request speaks of two things: let the LLM decide), or when one of
       the registry's ``abstain_patterns`` matches (e.g. several actions strung together with
       "and then": a plan across intents, which the LLM makes).
    4. Otherwise the decision is the candidate, with ``confidence`` = its score and ``rule`` =
       its heaviest matching rule. An abstention has ``confidence`` 0.0.

    Registry authors weigh rules so that a topic word alone (~0.65-0.7) just decides when it
    is the only evidence, an action on a topic (~0.85-0.95) beats a mere topic word of another
    intent by the margin, and a weak hint (0.5) never decides alone.

Checking
    :func:`check_registry` reports every problem with its line and column in the YAML file;
    :meth:`IntentRegistry.load` raises :class:`RegistryError` (one line: file, line, first
    problem, how many more) when any problem is an error. Warnings (an intent without English
    or German rules) do not stop loading.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from lam import Plan, ToDo

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_MIN_CONFIDENCE",
    "EXECUTORS",
    "REQUIRED_LANGUAGES",
    "IntentKind",
    "IntentRegistry",
    "IntentSpec",
    "RegistryError",
    "RegistryProblem",
    "RuleDecision",
    "RuleSpec",
    "check_registry",
    "check_registry_text",
    "default_registry",
    "fold",
]

IntentKind = Literal["plan", "answer"]

REGISTRY_VERSION = 1
DEFAULT_MIN_CONFIDENCE = 0.6
DEFAULT_MARGIN = 0.2
#: Executors a plan template may name (the built-in ones plus the no-LLM ``template``).
EXECUTORS: frozenset[str] = frozenset({"llm", "desktop", "human", "http", "template"})
#: Every intent should have rules in each of these languages (a warning otherwise).
REQUIRED_LANGUAGES: tuple[str, ...] = ("en", "de")
#: The placeholder replaced by the request text in plan templates.
REQUEST_PLACEHOLDER = "{request}"
#: Only this much of a request is looked at: rules look at the start and at short messages,
#: and a bound keeps one pathological line from slowing a batch of thousands.
MAX_TEXT_CHARS = 1000

_RESERVED_INTENTS = frozenset({"unknown"})
_INTENT_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")
_TOP_KEYS = frozenset(
    {"version", "description", "min_confidence", "margin", "abstain_patterns", "intents"}
)
_INTENT_KEYS = frozenset({"name", "description", "kind", "rules", "plan_template"})
_RULE_KEYS = frozenset({"name", "language", "keywords", "patterns", "negative", "weight"})
_PLAN_KEYS = frozenset({"goal", "todos"})
_TODO_KEYS = frozenset(
    {"id", "title", "description", "executor", "inputs", "depends_on", "requires_approval"}
)
# Tolerance for comparing sums of floats against thresholds (0.9 - 0.7 != 0.2 exactly).
_EPS = 1e-9

# Lower-case umlauts only: text is case-folded first. Patterns are not case-folded (that would
# turn \S into \s), so the pattern table also maps the capitals.
_FOLD_TEXT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "\u2019": "'", "\u2018": "'"})
_FOLD_PATTERN = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "Ä": "ae",
        "Ö": "oe",
        "Ü": "ue",
        "ß": "ss",
        "ẞ": "ss",
        "\u2019": "'",
        "\u2018": "'",
    }
)


def fold(text: str) -> str:
    """The form rules match against: NFC, case-folded (ß→ss), umlauts spelled out."""
    return unicodedata.normalize("NFC", text).casefold().translate(_FOLD_TEXT)


def _fold_pattern(pattern: str) -> str:
    return unicodedata.normalize("NFC", pattern).translate(_FOLD_PATTERN)


def _keyword_regex(keyword: str) -> str:
    """A keyword phrase as a regex: literal words, any whitespace between, ``*`` = any ending."""
    word = fold(keyword).strip()
    prefix = word.endswith("*")
    words = word.rstrip("*").split()
    body = r"\s+".join(re.escape(w) for w in words)
    return body + (r"\w*" if prefix else "")


def _bounded(regex: str) -> str:
    return rf"(?<!\w)(?:{regex})(?!\w)"


def _compile_any(regexes: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for many: ``(?<!\\w)(?:(?:a)|(?:b))(?!\\w)``. Same matches as bounding each
    alternative, but a position inside a word is rejected once, not once per alternative."""
    parts = [f"(?:{r})" for r in regexes]
    if not parts:
        return None
    return re.compile(_bounded("|".join(parts)), re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Public data


@dataclass(frozen=True)
class RuleSpec:
    """One rule as written in the registry (keywords and patterns unfolded)."""

    name: str
    language: str
    weight: float
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()


@dataclass(frozen=True)
class IntentSpec:
    """One intent of the registry."""

    name: str
    description: str
    kind: IntentKind
    rules: tuple[RuleSpec, ...]
    plan_template: dict[str, Any] | None = None

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(rule.language for rule in self.rules)


@dataclass(frozen=True)
class RuleDecision:
    """What the rules decided for one request.

    ``intent`` is None when the rules abstain (the LLM classifier decides then); ``confidence``
    is the winning intent's score (0.0 on abstention); ``rule`` names the heaviest matching rule
    of the winner. ``scores`` (every intent with a matching rule), ``matched`` and ``vetoed``
    (rule names) and ``reason`` explain the decision; :meth:`IntentRegistry.classify` leaves
    ``matched``/``vetoed`` empty, :meth:`IntentRegistry.explain` fills them.
    """

    text: str
    intent: str | None
    confidence: float
    rule: str | None
    scores: dict[str, float] = field(default_factory=dict)
    matched: list[str] = field(default_factory=list)
    vetoed: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def abstained(self) -> bool:
        return self.intent is None

    def to_json_dict(self) -> dict[str, Any]:
        """Exactly what ``cpa-planner intents explain --json`` prints for one request."""
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "rule": self.rule,
        }

    def describe(self) -> str:
        """A few lines for a person: the decision, why, and each intent's score."""
        head = (
            f"intent: {self.intent} (confidence {self.confidence:.2f}, rule {self.rule})"
            if self.intent is not None
            else "intent: none (the rules abstain; the LLM would decide)"
        )
        lines = [head, f"why: {self.reason}"]
        for name, score in sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {name:<12} {score:.2f}")
        if self.matched:
            lines.append("matched: " + ", ".join(self.matched))
        if self.vetoed:
            lines.append("vetoed: " + ", ".join(self.vetoed))
        return "\n".join(lines)


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


# --------------------------------------------------------------------------------------------
# Checking: walk the composed YAML nodes so every problem keeps its line.


def _pos(node: yaml.Node) -> tuple[int, int]:
    mark = node.start_mark
    return mark.line + 1, mark.column + 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class _Built:
    intents: list[IntentSpec]
    min_confidence: float
    margin: float
    abstain_patterns: list[str]  # folded


class _Checker:
    """Validates a composed registry document and builds the specs when it is sound."""

    def __init__(self) -> None:
        self.problems: list[RegistryProblem] = []
        self._loader = yaml.SafeLoader("")

    def add(self, node: yaml.Node | None, message: str, *, warning: bool = False) -> None:
        line, column = _pos(node) if node is not None else (None, None)
        severity: Literal["error", "warning"] = "warning" if warning else "error"
        self.problems.append(RegistryProblem(_one_line(message), line, column, severity))

    def value(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    def mapping(
        self, node: yaml.Node, what: str, allowed: frozenset[str]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Keys to (key node, value node); reports non-mappings, unknown and repeated keys."""
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
            if key not in allowed:
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

    def regexes(self, items: list[tuple[yaml.Node, str]], what: str) -> list[str]:
        """Folded regexes that compile; reports each one that does not, with re's message."""
        out = []
        for node, text in items:
            regex = _fold_pattern(text)
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
                re.compile(_bounded(f"(?:{regex})"), re.IGNORECASE)
            except re.error as exc:
                self.add(node, f"{what} {text!r} cannot be embedded in a rule: {exc}")
                continue
            out.append(regex)
        return out

    # -- the document ------------------------------------------------------------------------

    def document(self, root: yaml.Node | None) -> _Built | None:
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
            node = top["min_confidence"][1]
            value = self.number(node, "min_confidence")
            if value is not None and not 0.0 < value <= 1.0:
                self.add(node, f"min_confidence {value} must be in (0, 1]")
            elif value is not None:
                min_confidence = value
        margin = DEFAULT_MARGIN
        if "margin" in top:
            node = top["margin"][1]
            value = self.number(node, "margin")
            if value is not None and not 0.0 <= value < 1.0:
                self.add(node, f"margin {value} must be in [0, 1)")
            elif value is not None:
                margin = value
        abstain: list[str] = []
        if "abstain_patterns" in top:
            abstain = self.regexes(
                self.string_list(top["abstain_patterns"][1], "abstain pattern"), "abstain pattern"
            )
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
        return _Built(intents, min_confidence, margin, abstain)

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
            rules_node = keys["rules"][1]
            if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
                self.add(rules_node, f"{label}: rules must be a non-empty list")
            else:
                for rule_node in rules_node.value:
                    rule = self.rule(rule_node, label, seen_rules)
                    if rule is not None:
                        rules.append(rule)
                # languages as declared, even on rules broken otherwise (reported already)
                languages = {
                    self.value(value_node)
                    for rule_node in rules_node.value
                    if isinstance(rule_node, yaml.MappingNode)
                    for key_node, value_node in rule_node.value
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == "language"
                }
                for language in REQUIRED_LANGUAGES:
                    if language not in languages:
                        self.add(
                            keys["rules"][0], f"{label} has no '{language}' rules", warning=True
                        )
        template: dict[str, Any] | None = None
        if "plan_template" in keys:
            template_node = keys["plan_template"][1]
            if self.plan_template(template_node, label):
                template = self.value(template_node)
                if kind == "answer":
                    self.add(
                        template_node,
                        f"{label} is answered directly (kind: answer) and never uses its "
                        "plan_template",
                        warning=True,
                    )
        if name is None or description is None:
            return None
        return IntentSpec(name, description, kind, tuple(rules), template)

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
                    _compile_any(regexes)
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

    def plan_template(self, node: yaml.Node, label: str) -> bool:
        """Checks a plan template; True when it is a valid Plan (ids, deps, no cycle, executors)."""
        before = len(self.problems)
        what = f"{label}: plan_template"
        keys = self.mapping(node, what, _PLAN_KEYS)
        if keys is None:
            return False
        if "goal" not in keys:
            self.add(node, f"{what}: missing 'goal'")
        else:
            self.string(keys["goal"][1], f"{what}: goal")
        if "todos" not in keys:
            self.add(node, f"{what}: missing 'todos'")
            return False
        todos_node = keys["todos"][1]
        if not isinstance(todos_node, yaml.SequenceNode) or not todos_node.value:
            self.add(todos_node, f"{what}: todos must be a non-empty list")
            return False
        ids: dict[str, yaml.Node] = {}
        deps: dict[str, list[tuple[yaml.Node, str]]] = {}
        for todo_node in todos_node.value:
            self.todo(todo_node, what, ids, deps)
        for todo_id, edges in deps.items():
            for dep_node, dep in edges:
                if dep == todo_id:
                    self.add(dep_node, f"{what}: ToDo '{todo_id}' depends on itself")
                elif dep not in ids:
                    self.add(dep_node, f"{what}: ToDo '{todo_id}' depends on unknown ToDo '{dep}'")
        cycle = _find_cycle({t: [d for _, d in e if d in ids and d != t] for t, e in deps.items()})
        if cycle:
            self.add(ids[cycle[0]], f"{what}: dependency cycle {' -> '.join([*cycle, cycle[0]])}")
        if len(self.problems) == before:
            # the model itself is the last word on what a Plan is (types, empty strings, ...)
            try:
                Plan.model_validate(self.value(node))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                self.add(node, f"{what} is not a valid Plan: {loc}: {first['msg']}")
        return len(self.problems) == before

    def todo(
        self,
        node: yaml.Node,
        what: str,
        ids: dict[str, yaml.Node],
        deps: dict[str, list[tuple[yaml.Node, str]]],
    ) -> None:
        keys = self.mapping(node, f"{what}: ToDo", _TODO_KEYS)
        if keys is None:
            return
        todo_id: str | None = None
        for required in ("id", "title", "executor"):
            if required not in keys:
                self.add(node, f"{what}: ToDo without '{required}'")
        if "id" in keys:
            id_node = keys["id"][1]
            todo_id = self.string(id_node, f"{what}: ToDo id")
            if todo_id is not None:
                if todo_id in ids:
                    self.add(id_node, f"{what}: ToDo id '{todo_id}' is used twice")
                else:
                    ids[todo_id] = id_node
        label = f"{what}: ToDo '{todo_id}'" if todo_id else f"{what}: ToDo"
        if "title" in keys:
            self.string(keys["title"][1], f"{label}: title", one_line=True)
        if "description" in keys:
            desc = self.value(keys["description"][1])
            if not isinstance(desc, str):
                self.add(keys["description"][1], f"{label}: description must be a string")
        template_text: str | None = None
        if "executor" in keys:
            executor_node = keys["executor"][1]
            executor = self.value(executor_node)
            if executor not in EXECUTORS:
                self.add(
                    executor_node,
                    f"{label}: unknown executor {executor!r} "
                    f"(one of {', '.join(sorted(EXECUTORS))})",
                )
            elif executor == "template":
                inputs = self.value(keys["inputs"][1]) if "inputs" in keys else None
                if not isinstance(inputs, dict) or not isinstance(inputs.get("text"), str):
                    self.add(node, f"{label}: a 'template' ToDo needs inputs.text (a string)")
                else:
                    template_text = inputs["text"]
        if "inputs" in keys and not isinstance(keys["inputs"][1], yaml.MappingNode):
            self.add(keys["inputs"][1], f"{label}: inputs must be a mapping")
        if "requires_approval" in keys:
            flag_node = keys["requires_approval"][1]
            if not isinstance(self.value(flag_node), bool):
                self.add(flag_node, f"{label}: requires_approval must be true or false")
        edges: list[tuple[yaml.Node, str]] = []
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
                        edges.append((dep_node, dep))
        if template_text is not None:
            # the template executor fills {request} and {<dependency id>}; anything else
            # would reach the person unfilled
            known = {"request"} | {dep for _, dep in edges}
            for placeholder in sorted(set(_PLACEHOLDER.findall(template_text)) - known):
                self.add(
                    keys["inputs"][1],
                    f"{label}: inputs.text uses {{{placeholder}}}, which is neither {{request}} "
                    "nor one of its depends_on",
                )
        if todo_id is not None and todo_id not in deps:
            deps[todo_id] = edges


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """One dependency cycle (as a list of ids), or None. Iterative DFS, deterministic order."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = finished
    for start in graph:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph.get(start, [])))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(graph.get(child, []))))
    return None


def _packaged_registry() -> tuple[str, str]:
    resource = importlib.resources.files("prompts").joinpath("intents.yaml")
    return resource.read_text(encoding="utf-8"), str(resource)


def _read(path: str | Path | None) -> tuple[str, str]:
    if path is None:
        return _packaged_registry()
    try:
        return Path(path).read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(str(path), [RegistryProblem(f"cannot read the file: {exc}")]) from exc


def _check(text: str) -> tuple[list[RegistryProblem], _Built | None]:
    checker = _Checker()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
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
    return checker.problems, built


def check_registry_text(text: str) -> list[RegistryProblem]:
    """Every problem in a registry given as YAML text (errors and warnings), in file order."""
    problems, _ = _check(text)
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def check_registry(path: str | Path | None = None) -> list[RegistryProblem]:
    """Every problem in the registry file at ``path`` (None: the packaged one), in file order.

    An empty list means the registry is clean; problems with ``severity == "warning"`` do not
    stop :meth:`IntentRegistry.load`.
    """
    try:
        text, _ = _read(path)
    except RegistryError as exc:
        return exc.problems
    return check_registry_text(text)


# --------------------------------------------------------------------------------------------
# The engine


@dataclass(frozen=True)
class _CompiledRule:
    intent: str
    name: str
    language: str
    weight: float
    positive: re.Pattern[str]
    negative: re.Pattern[str] | None


def _fill_request(value: Any, request: str) -> Any:
    """Replaces ``{request}`` in every string (other ``{...}`` placeholders are left alone:
    the ``template`` executor fills ``{t1}`` etc. at run time)."""
    if isinstance(value, str):
        return value.replace(REQUEST_PLACEHOLDER, request)
    if isinstance(value, list):
        return [_fill_request(v, request) for v in value]
    if isinstance(value, dict):
        return {k: _fill_request(v, request) for k, v in value.items()}
    return value


class IntentRegistry:
    """The intents and their compiled rules; :meth:`classify` is pure and thread-safe."""

    def __init__(
        self,
        intents: Iterable[IntentSpec],
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        margin: float = DEFAULT_MARGIN,
        abstain_patterns: Iterable[str] = (),
        source: str = "<registry>",
    ) -> None:
        self.intents: dict[str, IntentSpec] = {spec.name: spec for spec in intents}
        self.min_confidence = min_confidence
        self.margin = margin
        self.abstain_patterns: tuple[str, ...] = tuple(abstain_patterns)
        self.source = source
        self._abstain = _compile_any(_fold_pattern(p) for p in self.abstain_patterns)
        # compiled once: classify() runs for every request, often thousands in one process
        self._rules: tuple[_CompiledRule, ...] = tuple(
            _CompiledRule(
                intent=spec.name,
                name=rule.name,
                language=rule.language,
                weight=rule.weight,
                positive=_compile_any(
                    [_keyword_regex(k) for k in rule.keywords]
                    + [_fold_pattern(p) for p in rule.patterns]
                )
                or re.compile(r"(?!)"),
                negative=_compile_any(_fold_pattern(n) for n in rule.negative),
            )
            for spec in self.intents.values()
            for rule in spec.rules
        )

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path | None = None) -> IntentRegistry:
        """Loads and checks a registry file (None: the packaged ``prompts/intents.yaml``).

        Raises :class:`RegistryError` when the file has any error (warnings are fine).
        """
        text, source = _read(path)
        return cls.from_text(text, source=source)

    @classmethod
    def from_text(cls, text: str, *, source: str = "<string>") -> IntentRegistry:
        problems, built = _check(text)
        errors = sorted(
            (p for p in problems if p.is_error), key=lambda p: (p.line or 0, p.column or 0)
        )
        if errors or built is None:
            raise RegistryError(source, errors or problems)
        return cls(
            built.intents,
            min_confidence=built.min_confidence,
            margin=built.margin,
            abstain_patterns=built.abstain_patterns,
            source=source,
        )

    # -- queries -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Intent names in registry order."""
        return list(self.intents)

    def kind(self, intent: str) -> IntentKind | None:
        spec = self.intents.get(intent)
        return spec.kind if spec else None

    def classify(self, text: str) -> RuleDecision:
        """The rules' decision for one request (``intent`` None = abstain)."""
        return self._decide(text, detail=False)

    def explain(self, text: str) -> RuleDecision:
        """Like :meth:`classify`, plus the matched and vetoed rules for a person to read."""
        return self._decide(text, detail=True)

    def plan_for(self, intent: str, request: str) -> Plan | None:
        """The intent's plan template with ``{request}`` filled in, or None if it has none."""
        spec = self.intents.get(intent)
        if spec is None or spec.plan_template is None:
            return None
        todos = []
        for todo in spec.plan_template["todos"]:
            filled = _fill_request(todo, request)
            if todo.get("executor") == "template":
                # Its text is formatted when it runs ({t1}, ...) and the executor fills
                # {request} itself, so braces in a request never read as placeholders.
                filled["inputs"] = dict(todo.get("inputs", {}))
            todos.append(filled)
        goal = _fill_request(spec.plan_template["goal"], request)
        return Plan.model_validate({**spec.plan_template, "goal": goal, "todos": todos})

    def todo_titles(self, intent: str) -> list[str]:
        """Titles of the template's ToDos (for "what I can do" answers); [] without template."""
        spec = self.intents.get(intent)
        if spec is None or spec.plan_template is None:
            return []
        return [ToDo.model_validate(t).title for t in spec.plan_template["todos"]]

    # -- the rule --------------------------------------------------------------------------

    def _decide(self, text: str, *, detail: bool) -> RuleDecision:
        folded = fold(text[:MAX_TEXT_CHARS]).strip()
        # per (intent, language): prod(1 - weight) over the matching rules
        miss: dict[tuple[str, str], float] = {}
        heaviest: dict[tuple[str, str], _CompiledRule] = {}
        matched: list[str] = []
        vetoed: list[str] = []
        if folded:
            for rule in self._rules:
                if rule.positive.search(folded) is None:
                    continue
                if rule.negative is not None and rule.negative.search(folded) is not None:
                    if detail:
                        vetoed.append(rule.name)
                    continue
                key = (rule.intent, rule.language)
                miss[key] = miss.get(key, 1.0) * (1.0 - rule.weight)
                best_rule = heaviest.get(key)
                if best_rule is None or rule.weight > best_rule.weight:
                    heaviest[key] = rule
                if detail:
                    matched.append(rule.name)
        scores: dict[str, float] = {}
        deciding: dict[str, _CompiledRule] = {}
        for key, m in miss.items():
            score = round(1.0 - m, 6)
            if score > scores.get(key[0], -1.0):
                scores[key[0]] = score
                deciding[key[0]] = heaviest[key]
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))

        def abstain(reason: str) -> RuleDecision:
            return RuleDecision(text, None, 0.0, None, scores, matched, vetoed, reason)

        if not ranked:
            return abstain("no rule matched" if folded else "empty request")
        best_intent, best = ranked[0]
        if best < self.min_confidence - _EPS:
            return abstain(
                f"best intent {best_intent} scores {best:.2f}, "
                f"below min_confidence {self.min_confidence:.2f}"
            )
        if len(ranked) > 1:
            runner_up, second = ranked[1]
            if best - second < self.margin - _EPS:
                return abstain(
                    f"{best_intent} ({best:.2f}) and {runner_up} ({second:.2f}) are closer "
                    f"than the margin {self.margin:.2f}"
                )
        if self._abstain is not None:
            several = self._abstain.search(folded)
            if several is not None:
                return abstain(
                    f"{several.group(0)!r} matches an abstain pattern "
                    "(several actions: the LLM plans them)"
                )
        rule = deciding[best_intent]
        reason = f"{best_intent} scores {best:.2f}"
        if len(ranked) > 1:
            reason += f", ahead of {ranked[1][0]} ({ranked[1][1]:.2f})"
        return RuleDecision(text, best_intent, best, rule.name, scores, matched, vetoed, reason)


@functools.lru_cache(maxsize=1)
def default_registry() -> IntentRegistry:
    """The packaged registry, loaded once per process."""
    return IntentRegistry.load()
