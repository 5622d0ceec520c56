"""The intent registry: intents, the tiers that decide, plan templates and canned replies."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from graph.intents.classifier import DEFAULT_MODEL, OUT_OF_SCOPE, ExampleClassifier
from graph.intents.compound import find_compound
from graph.intents.decide import Tiers, decide
from graph.intents.decision import Decision, RuleDecision, TemplatePlan
from graph.intents.phrases import PhraseMatcher
from graph.intents.readonly import look_up_query
from graph.intents.registry_check import RegistryError, parse_registry, read_registry
from graph.intents.rules import RuleEngine
from graph.intents.spec import (
    DEFAULT_MARGIN,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_REPLY,
    QUERY_PLACEHOLDER,
    READ_EFFECTS,
    REQUEST_PLACEHOLDER,
    ClassifierSpec,
    IntentKind,
    IntentSpec,
    TemplateSpec,
)
from graph.intents.text import compile_any, fold_request
from lam import Plan


def _fill(value: Any, values: dict[str, str]) -> Any:
    """Replaces ``{request}`` and ``{query}`` in every string (other ``{...}`` placeholders
    are left alone: the ``template`` executor fills ``{t1}`` etc. at run time)."""
    if isinstance(value, str):
        for placeholder, text in values.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _render(template: TemplateSpec, request: str) -> TemplatePlan:
    # {query}: what a read-only step looks up, never more (graph.intents.readonly)
    values = {REQUEST_PLACEHOLDER: request}
    if QUERY_PLACEHOLDER in json.dumps(template.plan, ensure_ascii=False):
        values[QUERY_PLACEHOLDER] = look_up_query(request)
    todos = []
    for todo in template.plan["todos"]:
        filled = _fill(todo, values)
        if todo.get("executor") == "template":
            # Its text is formatted when it runs ({t1}, ...) and the executor fills
            # {request} itself, so braces in a request never read as placeholders.
            filled["inputs"] = dict(todo.get("inputs", {}))
        todos.append(filled)
    goal = _fill(template.plan["goal"], values)
    plan = Plan.model_validate({**template.plan, "goal": goal, "todos": todos})
    return TemplatePlan(plan, dict(template.effects))


class IntentRegistry:
    """The intents and their tiers; :meth:`decide` is pure and thread-safe."""

    def __init__(
        self,
        intents: Iterable[IntentSpec],
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        margin: float = DEFAULT_MARGIN,
        abstain_patterns: Iterable[str] = (),
        classifier: ClassifierSpec | None = None,
        out_of_scope: dict[str, tuple[str, ...]] | None = None,
        source: str = "<registry>",
        classifier_model: str = DEFAULT_MODEL,
    ) -> None:
        self.intents: dict[str, IntentSpec] = {spec.name: spec for spec in intents}
        self.min_confidence = min_confidence
        self.margin = margin
        self.abstain_patterns: tuple[str, ...] = tuple(abstain_patterns)
        self.classifier_spec = classifier or ClassifierSpec()
        self.out_of_scope: dict[str, tuple[str, ...]] = dict(out_of_scope or {})
        self.source = source
        examples: dict[str, list[str]] = {
            name: [text for texts in spec.examples.values() for text in texts]
            for name, spec in self.intents.items()
            if spec.examples
        }
        if self.out_of_scope:
            examples[OUT_OF_SCOPE] = [t for texts in self.out_of_scope.values() for t in texts]
        # Built now, trained on first use: a rule-matched request never pays for it.
        self.classifier = ExampleClassifier(examples, model=classifier_model) if examples else None
        self.rules = RuleEngine(self.intents.values(), min_confidence=min_confidence, margin=margin)
        self._tiers = Tiers(
            self.rules,
            self.classifier,
            self.classifier_spec,
            compile_any(self.abstain_patterns),
            frozenset(name for name, spec in self.intents.items() if spec.kind == "plan"),
        )
        self._phrases = {
            name: PhraseMatcher(spec.phrases) for name, spec in self.intents.items() if spec.phrases
        }

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, executors: Collection[str] | None = None
    ) -> IntentRegistry:
        """Loads and checks a registry file (None: the packaged ``prompts/intents.yaml``).

        ``executors``: the executor names plan templates may use (None: not checked).
        Raises :class:`RegistryError` when the file has any error (warnings are fine).
        """
        text, source = read_registry(path)
        return cls.from_text(text, source=source, executors=executors)

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        source: str = "<string>",
        executors: Collection[str] | None = None,
    ) -> IntentRegistry:
        problems, built = parse_registry(text, executors=executors)
        if built is None:
            raise RegistryError(source, [p for p in problems if p.is_error] or problems)
        return cls(
            built.intents,
            min_confidence=built.min_confidence,
            margin=built.margin,
            abstain_patterns=built.abstain_patterns,
            classifier=built.classifier,
            out_of_scope=built.out_of_scope,
            source=source,
        )

    # -- queries -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Intent names in registry order."""
        return list(self.intents)

    def kind(self, intent: str) -> IntentKind | None:
        spec = self.intents.get(intent)
        return spec.kind if spec else None

    def warm(self) -> None:
        """Train the classifier now (about a second), not when a request first needs it."""
        if self.classifier is not None and self.classifier.usable:
            self.classifier.model()

    def decide(self, text: str) -> Decision:
        """The decision for one request: rules, compound detection, classifier; no LLM."""
        return decide(self._tiers, text)

    def explain(self, text: str) -> Decision:
        """Like :meth:`decide`, with the matched and vetoed rules and the classifier's scores."""
        return decide(self._tiers, text, detail=True)

    def template_for(
        self, intent: str, request: str, *, language: str, read_only: bool
    ) -> TemplatePlan | None:
        """The intent's plan template for the request, filled in; None when it has none.

        A read-only request gets the ``read`` template, or the ``act`` one when every step
        of it only reads; never one that changes anything. The template is in ``language``
        when the registry has it, else English, else any.
        """
        chosen = self._template(intent, language=language, read_only=read_only)
        return None if chosen is None else _render(chosen, request)

    def has_template(self, intent: str, *, language: str, read_only: bool) -> bool:
        """Whether :meth:`template_for` has a plan for such a request (none is made here)."""
        return self._template(intent, language=language, read_only=read_only) is not None

    def _template(self, intent: str, *, language: str, read_only: bool) -> TemplateSpec | None:
        spec = self.intents.get(intent)
        if spec is None:
            return None
        variants = ("read", "act") if read_only else ("act",)
        for variant in variants:
            versions = spec.templates.get(variant, {})
            chosen = (
                versions.get(language)
                or versions.get("*")
                or versions.get("en")
                or next(iter(versions.values()), None)
            )
            if chosen is None:
                continue
            if variant == "act" and read_only and not self._harmless(chosen):
                return None
            return chosen
        return None

    @staticmethod
    def _harmless(template: TemplateSpec) -> bool:
        todos = template.plan["todos"]
        return all(template.effects.get(t["id"]) in READ_EFFECTS for t in todos)

    def reply_for(self, decision: Decision) -> str | None:
        """The canned reply to a smalltalk-like decision, in the request's language: one
        sentence per act said (greeting, thanks, ...), in that order; None without replies."""
        spec = self.intents.get(decision.intent or "")
        if spec is None or not spec.replies:
            return None
        matcher = self._phrases.get(spec.name)
        acts = matcher.acts(fold_request(decision.text)) if matcher else []
        texts = [self._reply(spec, act, decision.language) for act in acts]
        found = [t for t in texts if t]
        if not found:
            return self._reply(spec, DEFAULT_REPLY, decision.language)
        return " ".join(dict.fromkeys(found))

    @staticmethod
    def _reply(spec: IntentSpec, act: str, language: str) -> str | None:
        versions = spec.replies.get(act, {})
        return versions.get(language) or versions.get("en") or next(iter(versions.values()), None)

    # -- the rules tier alone ----------------------------------------------------------------

    def match_rules(self, text: str) -> RuleDecision:
        """The rules' decision, abstaining on several actions; no classifier (see decide())."""
        verdict = self.rules.judge(fold_request(text))
        intent, confidence, rule, reason = (
            verdict.intent,
            verdict.confidence,
            verdict.rule,
            verdict.reason,
        )
        several = find_compound(text, self._tiers.abstain) if intent is not None else None
        if several is not None:
            intent, confidence, rule = None, 0.0, None
            reason = f"several actions: {several.reason}"
        return RuleDecision(text, intent, confidence, rule, verdict.scores, reason)


@functools.lru_cache(maxsize=1)
def default_registry() -> IntentRegistry:
    """The packaged registry, loaded once per process."""
    return IntentRegistry.load()
