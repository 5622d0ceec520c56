"""The registry file as pydantic models: every key it may have, and the checks between keys.

One description of the file serves three readers: :mod:`graph.intents.registry_check`
validates a YAML registry with it, :func:`registry_json_schema` gives editors its JSON
Schema, and :meth:`RegistryFile.to_spec` makes the frozen specs the tiers read
(:mod:`graph.intents.spec`). Values are :mod:`~graph.intents.registry_values`, plan
templates :mod:`~graph.intents.registry_templates` (lam's ToDo and an effect per step).

Shapes (types, required and unknown keys, ranges) are pydantic's own checks; what needs
several keys at once (a rule's patterns together, a name used once, an example taught
twice) is a validator here. A check that must be reported beside its neighbours' problems
reads ``info.data`` (the keys before it) or wraps the field, not the model: pydantic runs a
model's after-validators only when all its fields are valid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from graph.intents.registry_templates import PlanTemplate, Templates
from graph.intents.registry_values import (
    ERROR_TYPE,
    AbstainPatterns,
    Act,
    Fraction,
    IntentName,
    Keywords,
    LanguageCode,
    Margin,
    Negatives,
    OneLine,
    Patterns,
    PerLanguage,
    Strict,
    Text,
    Weight,
    combined,
    error_at,
    problem,
    raise_all,
)
from graph.intents.spec import (
    DEFAULT_CLASSIFIER_MARGIN,
    DEFAULT_CLASSIFIER_SUPPORT,
    DEFAULT_CLASSIFIER_THRESHOLD,
    DEFAULT_MARGIN,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_REPLY,
    REGISTRY_VERSION,
    ClassifierSpec,
    IntentKind,
    IntentSpec,
    RegistrySpec,
    RuleSpec,
    TemplateSpec,
)
from graph.intents.text import fold, fold_pattern

__all__ = ["Classifier", "Intent", "RegistryFile", "Rule", "registry_json_schema"]


# -- rules -------------------------------------------------------------------------------


class Rule(Strict):
    """A keyword and regex rule: it matches when a keyword or pattern does and no negative."""

    name: Text = Field(description="Unique in the registry, e.g. reminder.en.remind.")
    language: Text = Field(description="The language it is written for: en, de, ...")
    weight: Weight = Field(description="How much a match counts, in (0, 1].")
    keywords: Keywords = Field(
        default_factory=list, description="Phrases; a trailing * matches any ending."
    )
    patterns: Patterns = Field(
        default_factory=list,
        validate_default=True,  # so a rule with neither is reported with its other problems
        description="Python regular expressions (folded like the request).",
    )
    negative: Negatives = Field(
        default_factory=list, description="Regular expressions; any match vetoes the rule."
    )

    @field_validator("patterns")
    @classmethod
    def _something_to_match(cls, patterns: list[str], info: ValidationInfo) -> list[str]:
        keywords = info.data.get("keywords")
        if keywords is not None and not keywords and not patterns:
            raise problem("needs at least one keyword or pattern")
        return combined(patterns, "patterns")

    @field_validator("negative")
    @classmethod
    def _negative_combined(cls, negative: list[str]) -> list[str]:
        return combined(negative, "negative patterns")

    def to_spec(self) -> RuleSpec:
        return RuleSpec(
            self.name,
            self.language,
            self.weight,
            tuple(self.keywords),
            tuple(self.patterns),
            tuple(self.negative),
        )


# -- intents -----------------------------------------------------------------------------


class Intent(Strict):
    """One intent: its rules, examples, plan templates and canned replies."""

    name: IntentName = Field(
        description="A name like web_search, unique in the registry ('unknown' is reserved)."
    )
    description: OneLine = Field(description="One line, shown to the LLM and to people.")
    kind: IntentKind = Field("plan", description="plan: planned; answer: answered directly.")
    rules: list[Rule] = Field(min_length=1)
    plan_template: PlanTemplate | None = Field(
        None, description="One act template for every language (or use templates)."
    )
    templates: Templates | None = None
    examples: PerLanguage = Field(
        default_factory=dict, description="Utterances per language the classifier learns from."
    )
    phrases: dict[Act, PerLanguage] = Field(
        default_factory=dict, description="Whole-message phrases per act (greeting, ...)."
    )
    replies: dict[str, dict[LanguageCode, OneLine]] = Field(
        default_factory=dict,
        description=f"Canned answers per act of phrases (or {DEFAULT_REPLY}) and language.",
    )
    labels: dict[LanguageCode, OneLine] = Field(
        default_factory=dict, description="What the intent covers, in a few words, per language."
    )

    @field_validator("replies")
    @classmethod
    def _replies_to_phrases(
        cls, replies: dict[str, dict[str, str]], info: ValidationInfo
    ) -> dict[str, dict[str, str]]:
        phrases = info.data.get("phrases")
        if phrases is None:
            return replies  # the phrases have their own problem
        acts = {*phrases, DEFAULT_REPLY}
        known = ", ".join(sorted(acts))
        says = "which no phrase says"
        raise_all(
            [
                error_at((act,), act, f"reply for {act!r}, {says} ({known})", on_key=True)
                for act in replies
                if act not in acts
            ]
        )
        return replies

    @model_validator(mode="after")
    def _one_kind_of_template(self) -> Self:
        if self.plan_template is not None and self.templates is not None:
            message = "use either plan_template or templates"
            raise_all([error_at(("plan_template",), None, message, on_key=True)])
        return self

    def to_spec(self) -> IntentSpec:
        templates: dict[str, dict[str, TemplateSpec]] = {}
        if self.plan_template is not None:
            templates["act"] = {"*": self.plan_template.to_spec()}
        elif self.templates is not None:
            for variant in ("act", "read"):
                versions: dict[str, PlanTemplate] = dict(getattr(self.templates, variant))
                if versions:
                    templates[variant] = {lang: t.to_spec() for lang, t in versions.items()}
        return IntentSpec(
            self.name,
            self.description,
            self.kind,
            tuple(rule.to_spec() for rule in self.rules),
            templates,
            _utterances(self.examples),
            {act: _utterances(texts) for act, texts in self.phrases.items()},
            {act: dict(texts) for act, texts in self.replies.items()},
            dict(self.labels),
        )


def _utterances(per_language: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {language: tuple(texts) for language, texts in per_language.items()}


# -- the file ----------------------------------------------------------------------------


class Classifier(Strict):
    """When the example classifier may decide: its top intent's probability is at least
    the threshold and leads the runner-up (out of scope included) by the margin; on a request
    that may change things, the intent's share of the nearest examples is at least support."""

    threshold: Weight = DEFAULT_CLASSIFIER_THRESHOLD
    margin: Margin = DEFAULT_CLASSIFIER_MARGIN
    support: Fraction = DEFAULT_CLASSIFIER_SUPPORT


class RegistryFile(Strict):
    """An intent registry of cpa-planner (docs/intents.md): the intents, and the tiers'
    settings that decide a request without an LLM."""

    version: Literal[1] = Field(description=f"Use version: {REGISTRY_VERSION} (the file's format).")
    description: str = ""
    min_confidence: Weight = Field(
        DEFAULT_MIN_CONFIDENCE, description="The rules decide at this score or more."
    )
    margin: Margin = Field(
        DEFAULT_MARGIN, description="... and when the best intent leads the next by this much."
    )
    abstain_patterns: AbstainPatterns = Field(
        default_factory=list, description="Any match means several actions: the rules abstain."
    )
    classifier: Classifier = Field(default_factory=Classifier)
    out_of_scope: PerLanguage = Field(
        default_factory=dict, description="Requests no intent fits, per language (classifier)."
    )
    intents: list[Intent] = Field(min_length=1, description="A non-empty list of intents.")

    @field_validator("version", mode="before")
    @classmethod
    def _supported(cls, version: Any) -> Any:
        if version != REGISTRY_VERSION or isinstance(version, bool):
            raise problem(f"registry version {version!r} is not supported (use {REGISTRY_VERSION})")
        return version

    @field_validator("intents", mode="wrap")
    @classmethod
    def _names_once(cls, intents: Any, handler: Callable[[Any], list[Intent]]) -> list[Intent]:
        """Intent and rule names are used once, reported with the intents' other problems."""
        twice = _names_twice(intents)
        try:
            checked = handler(intents)
        except ValidationError as exc:
            if not twice:
                raise
            raise_all([*_details(exc), *twice])
            raise
        raise_all(twice)
        return checked

    @model_validator(mode="after")
    def _examples_once(self) -> Self:
        """An utterance taught as two intents (or as one and as out of scope) is an error."""
        owner: dict[str, str] = {}
        found: list[InitErrorDetails] = []
        labelled = [(intent.name, intent.examples) for intent in self.intents]
        for name, examples in [*labelled, ("out_of_scope", self.out_of_scope)]:
            for texts in examples.values():
                for text in texts:
                    first = owner.setdefault(fold(text), name)
                    if first != name:
                        message = f"example {text!r} is given for {first} and for {name}"
                        found.append(error_at(("intents",), text, message))
        raise_all(found)
        return self

    def to_spec(self) -> RegistrySpec:
        return RegistrySpec(
            intents=tuple(intent.to_spec() for intent in self.intents),
            min_confidence=self.min_confidence,
            margin=self.margin,
            abstain_patterns=tuple(fold_pattern(p) for p in self.abstain_patterns),
            classifier=ClassifierSpec(
                self.classifier.threshold, self.classifier.margin, self.classifier.support
            ),
            out_of_scope=_utterances(self.out_of_scope),
        )


def _names_twice(intents: Any) -> list[InitErrorDetails]:
    """Intent names and rule names given a second time, read off the unchecked list."""
    found: list[InitErrorDetails] = []
    if not isinstance(intents, list):
        return found
    first_intent: dict[str, int] = {}
    first_rule: dict[str, tuple[int, int]] = {}
    for i, intent in enumerate(intents):
        if not isinstance(intent, dict):
            continue
        name = intent.get("name")
        if isinstance(name, str):
            if name in first_intent:
                where = (first_intent[name], "name")
                message = f"intent '{name}' is defined twice"
                found.append(error_at((i, "name"), name, message, first=where))
            else:
                first_intent[name] = i
        rules = intent.get("rules")
        for r, rule in enumerate(rules if isinstance(rules, list) else []):
            rule_name = rule.get("name") if isinstance(rule, dict) else None
            if not isinstance(rule_name, str):
                continue
            if rule_name in first_rule:
                at = first_rule[rule_name]
                message = f"rule '{rule_name}' is defined twice"
                first = (at[0], "rules", at[1], "name")
                found.append(error_at((i, "rules", r, "name"), rule_name, message, first=first))
            else:
                first_rule[rule_name] = (i, r)
    return found


def _details(exc: ValidationError) -> list[InitErrorDetails]:
    """A ValidationError's errors, to be raised again with more (pydantic's types as they
    are; this module's own rebuilt from their ctx, which holds the whole message)."""
    out: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx")
        if error["type"] == ERROR_TYPE and ctx is not None:
            own = PydanticCustomError(ERROR_TYPE, "{message}", ctx)
            out.append(InitErrorDetails(type=own, loc=error["loc"], input=error["input"]))
            continue
        details = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
        if ctx is not None:
            details["ctx"] = ctx
        out.append(details)
    return out


# -- the JSON Schema ---------------------------------------------------------------------


class _Schema(GenerateJsonSchema):
    """pydantic's schema, with maps keyed by a pattern closed to other keys (a language
    code map accepts no ``english:``), as the models are."""

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        generated = super().dict_schema(schema)
        if "patternProperties" in generated:
            generated["additionalProperties"] = False
        return generated


def registry_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a registry file, for editors."""
    schema = RegistryFile.model_json_schema(schema_generator=_Schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
