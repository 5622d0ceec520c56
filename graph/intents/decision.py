"""What the front door learns about a request without an LLM: the decision and its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from graph.effects import Effect
from graph.intents.compound import Compound
from graph.intents.spec import Language
from lam import Plan

Tier = Literal["rules", "classifier"]


@dataclass(frozen=True)
class Decision:
    """The decision for one request.

    ``intent`` is set only for a confident single-action decision (by ``tier``); then
    ``confidence`` is its score and, for the rules, ``rule`` the deciding rule. ``compound``
    is set when several actions were found (``intent`` is None then). ``hints`` are the
    intents seen in the request, best first, for the LLM planner's prompt. ``scores``,
    ``matched``, ``vetoed`` and ``classifier`` are detail for a person (``explain``).
    """

    text: str
    intent: str | None
    confidence: float
    tier: Tier | None
    rule: str | None
    language: Language
    read_only: bool
    compound: Compound | None
    hints: tuple[str, ...]
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    matched: tuple[str, ...] = ()
    vetoed: tuple[str, ...] = ()
    classifier: tuple[tuple[str, float], ...] = ()

    @property
    def abstained(self) -> bool:
        return self.intent is None

    def to_json_dict(self) -> dict[str, Any]:
        """What ``cpa-planner intents explain --json`` prints for one request."""
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "rule": self.rule,
            "tier": self.tier,
            "read_only": self.read_only,
            "language": self.language,
            "compound": self.compound.reason if self.compound else None,
            "hints": list(self.hints),
        }

    def describe(self) -> str:
        """A few lines for a person: the decision, who made it, why, and the scores."""
        if self.intent is None:
            head = "intent: none (no confident decision without an LLM)"
        elif self.tier == "classifier":
            head = f"intent: {self.intent} (classifier, score {self.confidence:.2f})"
        else:
            head = f"intent: {self.intent} (confidence {self.confidence:.2f}, rule {self.rule})"
        lines = [head, f"why: {self.reason}"]
        if self.compound is not None:
            lines.append(f"compound: {self.compound.reason}")
            follows = self.compound.follows
            lines.extend(
                f"  - {part}"
                + (" (uses what the one before gives)" if n < len(follows) and follows[n] else "")
                for n, part in enumerate(self.compound.parts)
            )
        lines.append(f"language: {self.language}, read_only: {str(self.read_only).lower()}")
        if self.hints:
            lines.append("hints: " + ", ".join(self.hints))
        for name, score in sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {name:<12} {score:.2f}")
        if self.matched:
            lines.append("matched: " + ", ".join(self.matched))
        if self.vetoed:
            lines.append("vetoed: " + ", ".join(self.vetoed))
        if self.classifier:
            top = ", ".join(f"{label} {p:.2f}" for label, p in self.classifier[:3])
            lines.append(f"classifier: {top}")
        return "\n".join(lines)


@dataclass(frozen=True)
class TemplatePlan:
    """An intent's plan template, filled in, with the effects its steps declare."""

    plan: Plan
    effects: dict[str, Effect]  # ToDo id -> the effect its template step declares


@dataclass(frozen=True)
class RuleDecision:
    """The rules' decision alone (what :meth:`IntentRegistry.match_rules` returned before the
    tiers; kept until the nodes call :meth:`IntentRegistry.decide`)."""

    text: str
    intent: str | None
    confidence: float
    rule: str | None
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "rule": self.rule,
        }
