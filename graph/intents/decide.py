"""The tiers in order: rules, then compound detection, then the classifier. Pure; no LLM.

1. The rules judge the request (:mod:`graph.intents.rules`).
2. A request with several actions (:mod:`graph.intents.compound`) is never decided, whatever
   the rules found: one intent's template would drop the other actions. The intents seen in
   its parts become hints for the LLM planner.
3. A single action the rules decided is theirs.
4. Otherwise the classifier (:mod:`graph.intents.classifier`) decides when it is confident,
   unless the rules saw a different intent strongly enough to decide on it alone (they
   abstained for the margin: the request speaks of two things), nor on a plan intent whose
   own rule's ``negative`` said it is not that intent. On a request that is not
   read-only its intent must also have the support of the nearest examples: a wrong guess
   there proposes a plan that changes things, a wrong look-up only reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graph.intents.classifier import OUT_OF_SCOPE, ClassifierVerdict, ExampleClassifier
from graph.intents.compound import find_compound
from graph.intents.decision import Decision, Tier
from graph.intents.language import detect_language
from graph.intents.readonly import is_read_only
from graph.intents.rules import RuleEngine, RuleVerdict
from graph.intents.spec import ClassifierSpec
from graph.intents.text import fold_request

#: A rule score or classifier probability this high makes an intent a hint.
HINT_RULE_SCORE = 0.5
HINT_CLASSIFIER_SCORE = 0.25
MAX_HINTS = 4


@dataclass(frozen=True)
class Tiers:
    """What :func:`decide` runs: the registry's compiled tiers."""

    rules: RuleEngine
    classifier: ExampleClassifier | None
    classifier_spec: ClassifierSpec
    abstain: re.Pattern[str] | None
    plans: frozenset[str] = frozenset()  # the intents whose decision proposes a plan


def _rule_hints(verdict: RuleVerdict) -> list[str]:
    if verdict.intent is not None:
        return [verdict.intent]
    return [name for name, score in verdict.ranked() if score >= HINT_RULE_SCORE]


def _classifier_hints(verdict: ClassifierVerdict) -> list[str]:
    return [
        label for label, p in verdict.ranked if label != OUT_OF_SCOPE and p >= HINT_CLASSIFIER_SCORE
    ]


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))[:MAX_HINTS]


def decide(tiers: Tiers, text: str, *, detail: bool = False) -> Decision:
    """The decision for one request (see the module docstring)."""
    folded = fold_request(text)
    language = detect_language(text)
    read_only = is_read_only(text)
    verdict = tiers.rules.judge(folded, detail=detail)
    compound = find_compound(text, tiers.abstain) if folded else None
    usable = tiers.classifier if tiers.classifier and tiers.classifier.usable else None

    def decision(
        intent: str | None,
        confidence: float,
        tier: Tier | None,
        reason: str,
        hints: list[str],
        classified: ClassifierVerdict | None = None,
    ) -> Decision:
        return Decision(
            text=text,
            intent=intent,
            confidence=confidence,
            tier=tier,
            rule=verdict.rule if tier == "rules" else None,
            language=language,
            read_only=read_only,
            compound=compound,
            hints=_unique(hints),
            reason=reason,
            scores=verdict.scores,
            matched=verdict.matched,
            vetoed=verdict.vetoed,
            classifier=classified.ranked if classified and detail else (),
        )

    if compound is not None:
        hints: list[str] = []
        for part in compound.parts:
            part_verdict = tiers.rules.judge(fold_request(part))
            found = _rule_hints(part_verdict)
            if not found and usable is not None:
                found = _classifier_hints(usable.read(part))[:1]
            hints += found
        hints += _rule_hints(verdict)
        return decision(None, 0.0, None, f"several actions: {compound.reason}", hints)
    if verdict.intent is not None:
        return decision(verdict.intent, verdict.confidence, "rules", verdict.reason, [])
    if usable is None or not folded:
        return decision(
            None, 0.0, None, f"the rules abstain: {verdict.reason}", _rule_hints(verdict)
        )
    read = usable.read(text)
    label, score = read.best
    spec = tiers.classifier_spec
    # a plan that may change things is held to the nearest examples too; a look-up or an
    # answer is not
    acting = label in tiers.plans and not read_only
    chosen = read.decides(spec.threshold, spec.margin, spec.support if acting else 0.0)
    rival = next(
        (
            name
            for name, rule_score in verdict.ranked()
            if name != chosen and rule_score >= tiers.rules.min_confidence
        ),
        None,
    )
    if rival is None and chosen in verdict.denied and chosen in tiers.plans:
        rival = f"negative for {chosen}"
    hints = _rule_hints(verdict) + _classifier_hints(read)
    if chosen is not None and rival is None:
        return decision(
            chosen,
            score,
            "classifier",
            f"the rules abstain ({verdict.reason}); the classifier scores {chosen} "
            f"{score:.2f}, {read.lead:.2f} ahead",
            [],
            read,
        )
    if chosen is not None:
        why = f"the classifier's {chosen} ({score:.2f}) is contradicted by the rules' {rival}"
    elif label == OUT_OF_SCOPE:
        why = f"the classifier finds no intent fits ({score:.2f})"
    elif read.decides(spec.threshold, spec.margin) is not None:
        why = (
            f"the classifier scores {label} {score:.2f}, but its nearest examples are mostly "
            f"others' ({label} {read.support:.2f} of them, needs {spec.support:.2f} for a "
            "request that may change things)"
        )
    else:
        why = (
            f"the classifier is not confident: {label} {score:.2f}, {read.lead:.2f} ahead "
            f"(needs {spec.threshold:.2f} and {spec.margin:.2f})"
        )
    return decision(None, 0.0, None, f"the rules abstain ({verdict.reason}); {why}", hints, read)
