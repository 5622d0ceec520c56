"""The rules tier: keyword and regex rules, scored, with the right to abstain.

Matching
    A rule *matches* when any of its keywords or patterns matches the folded request
    (:mod:`graph.intents.text`) and none of its ``negative`` patterns does (a negative vetoes
    only its own rule). An intent with ``phrases`` (greetings, thanks, goodbyes) also matches,
    with weight 1.0 and the rule name ``<intent>.phrases``, a message made only of its
    phrases (:mod:`graph.intents.phrases`).

Scoring (precision over recall)
    1. Per intent and language, the weights of the matching rules combine by noisy-or:
       ``1 - prod(1 - weight)``; independent evidence adds up, but never past 1. The intent's
       score is the best of its languages: cognates ("Mail", "PDFs", "Meeting") match the
       English and the German rules alike, and the same word must not count twice.
    2. The best-scoring intent is the candidate; ties break by name (deterministic).
    3. The rules *abstain* when nothing matched, when the best score is below the registry's
       ``min_confidence``, or when the best score leads the runner-up by less than ``margin``
       (the request speaks of two things).
    4. Otherwise the candidate decides, with ``confidence`` = its score and ``rule`` = its
       heaviest matching rule.

    Registry authors weigh rules so that a topic word alone (~0.65-0.7) just decides when it
    is the only evidence, an action on a topic (~0.85-0.95) beats a mere topic word of another
    intent by the margin, and a weak hint (0.5) never decides alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from graph.intents.phrases import PhraseMatcher
from graph.intents.spec import IntentSpec
from graph.intents.text import NEVER, compile_any, fold_pattern, keyword_regex

# Tolerance for comparing sums of floats against thresholds (0.9 - 0.7 != 0.2 exactly).
_EPS = 1e-9


@dataclass(frozen=True)
class RuleVerdict:
    """What the rules found in one request.

    ``intent`` is None when they abstain; ``scores`` has every intent with a matching rule;
    ``matched``/``vetoed`` are rule names (filled only with ``detail``). ``denied``: intents
    a rule strong enough to decide alone matched and its own ``negative`` vetoed ("remind me
    what my PIN is" is no reminder, "send a text to Maya" no email), unless another strong
    rule of the intent matched: what a person wrote down as "not this intent".
    """

    intent: str | None
    confidence: float
    rule: str | None
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    matched: tuple[str, ...] = ()
    vetoed: tuple[str, ...] = ()
    denied: frozenset[str] = frozenset()

    def ranked(self) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class _CompiledRule:
    intent: str
    name: str
    language: str
    weight: float
    positive: re.Pattern[str]
    negative: re.Pattern[str] | None


class RuleEngine:
    """The intents' rules, compiled once: :meth:`judge` runs for every request."""

    def __init__(
        self, intents: Iterable[IntentSpec], *, min_confidence: float, margin: float
    ) -> None:
        specs = list(intents)
        self.min_confidence = min_confidence
        self.margin = margin
        self._rules: tuple[_CompiledRule, ...] = tuple(
            _CompiledRule(
                intent=spec.name,
                name=rule.name,
                language=rule.language,
                weight=rule.weight,
                positive=compile_any(
                    [keyword_regex(k) for k in rule.keywords]
                    + [fold_pattern(p) for p in rule.patterns]
                )
                or NEVER,
                negative=compile_any(fold_pattern(n) for n in rule.negative),
            )
            for spec in specs
            for rule in spec.rules
        )
        self.phrases: dict[str, PhraseMatcher] = {
            spec.name: PhraseMatcher(spec.phrases) for spec in specs if spec.phrases
        }

    def judge(self, folded: str, *, detail: bool = False) -> RuleVerdict:
        """The rules' verdict on a folded request (see the module's docstring)."""
        # per (intent, language): prod(1 - weight) over the matching rules
        miss: dict[tuple[str, str], float] = {}
        heaviest: dict[tuple[str, str], tuple[str, float]] = {}
        matched: list[str] = []
        vetoed: list[str] = []
        denied: set[str] = set()

        def hit(intent: str, language: str, name: str, weight: float) -> None:
            key = (intent, language)
            miss[key] = miss.get(key, 1.0) * (1.0 - weight)
            if key not in heaviest or weight > heaviest[key][1]:
                heaviest[key] = (name, weight)
            if detail:
                matched.append(name)

        if folded:
            for rule in self._rules:
                if rule.positive.search(folded) is None:
                    continue
                if rule.negative is not None and rule.negative.search(folded) is not None:
                    if rule.weight >= self.min_confidence - _EPS:
                        denied.add(rule.intent)
                    if detail:
                        vetoed.append(rule.name)
                    continue
                hit(rule.intent, rule.language, rule.name, rule.weight)
            for intent, matcher in self.phrases.items():
                if matcher.whole(folded):
                    hit(intent, "*", f"{intent}.phrases", 1.0)
        scores: dict[str, float] = {}
        deciding: dict[str, str] = {}
        for key, m in miss.items():
            score = round(1.0 - m, 6)
            if score > scores.get(key[0], -1.0):
                scores[key[0]] = score
                deciding[key[0]] = heaviest[key][0]
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        no = frozenset(i for i in denied if scores.get(i, 0.0) < self.min_confidence - _EPS)

        def abstain(reason: str) -> RuleVerdict:
            return RuleVerdict(None, 0.0, None, reason, scores, tuple(matched), tuple(vetoed), no)

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
        reason = f"{best_intent} scores {best:.2f}"
        if len(ranked) > 1:
            reason += f", ahead of {ranked[1][0]} ({ranked[1][1]:.2f})"
        return RuleVerdict(
            best_intent,
            best,
            deciding[best_intent],
            reason,
            scores,
            tuple(matched),
            tuple(vetoed),
            no,
        )
