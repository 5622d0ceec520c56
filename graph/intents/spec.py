"""The registry as the checker builds it: intents, their rules, examples, templates and replies.

Plain frozen data, made by the registry file's models (``RegistryFile.to_spec`` in
:mod:`graph.intents.registry_model`) once the check has found no error; every tier reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from graph.effects import HARMLESS, Effect

IntentKind = Literal["plan", "answer"]
Language = Literal["en", "de"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
#: Template variants: ``act`` does what was asked, ``read`` only looks (a read-only query).
Variant = Literal["act", "read"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
#: Effects a step of a ``read`` template may declare.
READ_EFFECTS: frozenset[Effect] = HARMLESS

REGISTRY_VERSION = 1
DEFAULT_MIN_CONFIDENCE = 0.6
DEFAULT_MARGIN = 0.2
DEFAULT_CLASSIFIER_THRESHOLD = 0.7
DEFAULT_CLASSIFIER_MARGIN = 0.3
DEFAULT_CLASSIFIER_SUPPORT = 0.0
#: Every intent should have rules in each of these languages (a warning otherwise).
REQUIRED_LANGUAGES: tuple[Language, ...] = LANGUAGES
#: The placeholder replaced by the request text in plan templates.
REQUEST_PLACEHOLDER = "{request}"
#: The placeholder replaced by what a read-only request looks up (graph.intents.readonly).
QUERY_PLACEHOLDER = "{query}"
#: The act a reply is given for when no phrase of a known act was said.
DEFAULT_REPLY = "default"


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
class TemplateSpec:
    """One plan template: ``plan`` is the Plan as a dict (``{request}`` not yet filled in);
    ``effects`` maps ToDo ids to the effect their step declares (steps without one are absent:
    their executor decides)."""

    plan: dict[str, Any]
    effects: dict[str, Effect] = field(default_factory=dict)


@dataclass(frozen=True)
class IntentSpec:
    """One intent of the registry.

    ``templates[variant][language]`` is a plan template; language ``"*"`` serves every
    language (a registry's single ``plan_template``). ``examples[language]`` are the
    utterances the classifier learns from. ``phrases[act][language]`` are whole-message
    phrases (greetings, thanks, ...) and ``replies[act][language]`` the canned answers.
    ``labels[language]`` says in a few words what the intent covers, for a person (the
    answer that lists what the planner can do); ``description`` stands in where none is.
    """

    name: str
    description: str
    kind: IntentKind
    rules: tuple[RuleSpec, ...]
    templates: dict[str, dict[str, TemplateSpec]] = field(default_factory=dict)
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    phrases: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    replies: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, language: str) -> str:
        """What the intent covers, for a person, in `language` where the registry says it."""
        return self.labels.get(language) or self.labels.get("en") or self.description

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(rule.language for rule in self.rules)

    @property
    def plan_template(self) -> dict[str, Any] | None:
        """The act template in English (or for any language): what plan_for() used to give."""
        act = self.templates.get("act", {})
        chosen = act.get("en") or act.get("*") or next(iter(act.values()), None)
        return chosen.plan if chosen else None


@dataclass(frozen=True)
class ClassifierSpec:
    """When the example classifier may decide: its top intent's probability is at least
    ``threshold`` and leads the runner-up (out of scope included) by at least ``margin``; on a
    request that is not read-only (its plan may change things), the intent's share of the
    nearest examples is at least ``support`` too (:mod:`graph.intents.classifier`)."""

    threshold: float = DEFAULT_CLASSIFIER_THRESHOLD
    margin: float = DEFAULT_CLASSIFIER_MARGIN
    support: float = DEFAULT_CLASSIFIER_SUPPORT


@dataclass(frozen=True)
class RegistrySpec:
    """Everything a registry file says, checked."""

    intents: tuple[IntentSpec, ...]
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    margin: float = DEFAULT_MARGIN
    abstain_patterns: tuple[str, ...] = ()  # folded
    classifier: ClassifierSpec = field(default_factory=ClassifierSpec)
    out_of_scope: dict[str, tuple[str, ...]] = field(default_factory=dict)
