"""Measuring the tiers on labelled requests, and calibrating the classifier's threshold.

A labelled file is JSON Lines: ``{"text": "...", "intent": "calendar"}``; ``"intent": null``
for a request no intent fits, a list (``["calendar", "email"]``, ``null`` for an action no
intent fits) for one with several actions, which no rule and no classifier may decide.
Blank lines and lines starting with ``#`` are skipped.

Per tier (rules, classifier, compound detection): precision (right decisions / decisions),
coverage (single-action requests it decided / all single-action requests) and false fires (a
``plan`` intent decided on a request that is not that intent), apart: *side-effecting* ones,
on a request that is not read-only (its plan may change things), and *look-ups*, on a
read-only request (its plan only reads). Requests with several actions decided as one
intent are counted too.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph.intents.classifier import OUT_OF_SCOPE
from graph.intents.decision import Decision
from graph.intents.registry import IntentRegistry
from graph.intents.text import fold_request

MULTI = "<several>"
NONE = "<none>"
COMPOUND = "<compound>"
ABSTAIN = "<abstain>"
TIERS = ("rules", "classifier", "compound")


class LabelledFileError(ValueError):
    """A labelled file that cannot be read; str() names the file and line."""


@dataclass(frozen=True)
class Labelled:
    text: str
    expected: str | tuple[str | None, ...] | None  # an intent, None (out of scope), or several

    @property
    def single(self) -> str | None:
        return self.expected if isinstance(self.expected, str) else None

    @property
    def several(self) -> bool:
        return isinstance(self.expected, tuple)

    @property
    def row(self) -> str:
        return self.single or (MULTI if self.several else NONE)


def read_labelled(path: str | Path, known: Iterable[str]) -> list[Labelled]:
    """The labelled requests of a JSON Lines file; every bad line is an error with its number."""
    names = set(known)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledFileError(f"{path}: cannot read the file: {exc}") from None
    out: list[Labelled] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledFileError(f"{where}: not JSON: {exc.msg}") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise LabelledFileError(f'{where}: expected {{"text": str, "intent": ...}}')
        if not item["text"].strip():
            raise LabelledFileError(f"{where}: the text is empty")
        intent = item.get("intent", "missing")
        labels = intent if isinstance(intent, list) else [intent]
        if intent == "missing" or not all(x is None or isinstance(x, str) for x in labels):
            raise LabelledFileError(
                f"{where}: intent must be an intent name, null or a list of names"
            )
        unknown = sorted({x for x in labels if x is not None and x not in names})
        if unknown:
            raise LabelledFileError(
                f"{where}: unknown intent {', '.join(unknown)} (known: {', '.join(sorted(names))})"
            )
        expected: str | tuple[str | None, ...] | None
        if isinstance(intent, list):
            # one entry per action; null for an action no intent fits ("book a table")
            if not intent:
                raise LabelledFileError(f"{where}: a list of intents has one entry per action")
            expected = intent[0] if len(intent) == 1 else tuple(intent)
        else:
            expected = intent
        out.append(Labelled(item["text"], expected))
    if not out:
        raise LabelledFileError(f"{path}: no labelled requests in it")
    return out


@dataclass
class TierReport:
    decided: int = 0
    decided_single: int = 0  # decisions on single-action requests
    correct: int = 0
    false_fires: int = 0  # plan intents decided wrongly (rules, classifier)
    side_effecting: int = 0  # ... on a request that is not read-only
    look_ups: int = 0  # ... on a read-only request: its plan only reads

    @property
    def precision(self) -> float | None:
        return self.correct / self.decided if self.decided else None


@dataclass
class Report:
    lines: int
    single: int  # single-action lines
    several: int  # lines with several actions
    out_of_scope: int
    tiers: dict[str, TierReport]
    several_decided: int  # lines with several actions decided by a rule or the classifier
    confusion: dict[str, Counter[str]] = field(default_factory=dict)
    mistakes: list[dict[str, Any]] = field(default_factory=list)

    def coverage(self, *tiers: str) -> float:
        """Single-action requests decided by these tiers, as a fraction of all of them."""
        if not self.single:
            return 0.0
        return sum(self.tiers[t].decided_single for t in tiers) / self.single

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "single_action": self.single,
            "several_actions": self.several,
            "out_of_scope": self.out_of_scope,
            "tiers": {
                name: {
                    "decided": tier.decided,
                    "correct": tier.correct,
                    "precision": None if tier.precision is None else round(tier.precision, 4),
                    "false_fires": tier.false_fires,
                    "side_effecting_fires": tier.side_effecting,
                    "look_up_fires": tier.look_ups,
                }
                for name, tier in self.tiers.items()
            },
            "coverage": {
                "rules": round(self.coverage("rules"), 4),
                "classifier": round(self.coverage("classifier"), 4),
                "rules+classifier": round(self.coverage("rules", "classifier"), 4),
            },
            "compound_recall": round(self.tiers["compound"].correct / self.several, 4)
            if self.several
            else None,
            "several_actions_decided": self.several_decided,
            "confusion": {row: dict(cols) for row, cols in self.confusion.items()},
            "mistakes": self.mistakes,
        }

    def describe(self) -> str:
        def pct(value: float | None) -> str:
            return "  n/a" if value is None else f"{100 * value:5.1f}%"

        lines = [
            f"{self.lines} requests: {self.single} single-action, {self.several} with several "
            f"actions, {self.out_of_scope} out of scope",
            "",
            "tier         decided  correct  precision  false fires (side-effecting, look-ups)",
        ]
        for name, tier in self.tiers.items():
            fires = (
                "-"
                if name == "compound"
                else f"{tier.false_fires} ({tier.side_effecting}, {tier.look_ups})"
            )
            lines.append(
                f"{name:<12} {tier.decided:>7}  {tier.correct:>7}  {pct(tier.precision):>9}"
                f"  {fires:>11}"
            )
        lines += [
            "",
            f"coverage of single-action requests: rules {pct(self.coverage('rules'))}, "
            f"+ classifier {pct(self.coverage('rules', 'classifier'))}",
        ]
        if self.several:
            found = self.tiers["compound"].correct / self.several
            lines.append(
                f"several actions: {pct(found)} found as compound; "
                f"{self.several_decided} decided as one intent by a rule or the classifier "
                f"({pct(self.several_decided / self.several).strip()})"
            )
        columns = sorted({c for cols in self.confusion.values() for c in cols})
        width = max([len(c) for c in columns] + [8])
        lines += ["", "confusion (rows: expected, columns: decided)"]
        lines.append(" " * 14 + " ".join(f"{c[:width]:>{width}}" for c in columns))
        for row in sorted(self.confusion):
            counts = self.confusion[row]
            cells = " ".join(f"{counts.get(c, 0) or '.':>{width}}" for c in columns)
            lines.append(f"{row[:13]:<14}{cells}")
        if self.mistakes:
            lines += ["", "wrong decisions:"]
            lines += [
                f"  {m['tier']}: {m['decided']} for {m['text']!r} (expected {m['expected']})"
                for m in self.mistakes
            ]
        return "\n".join(lines)


def evaluate(registry: IntentRegistry, labelled: Sequence[Labelled]) -> Report:
    """Decides every labelled request and counts per tier (see the module docstring)."""
    tiers = {name: TierReport() for name in TIERS}
    report = Report(
        lines=len(labelled),
        single=sum(1 for x in labelled if x.single),
        several=sum(1 for x in labelled if x.several),
        out_of_scope=sum(1 for x in labelled if x.expected is None),
        tiers=tiers,
        several_decided=0,
    )
    for item in labelled:
        decision = registry.decide(item.text)
        column = decision.intent or (COMPOUND if decision.compound else ABSTAIN)
        report.confusion.setdefault(item.row, Counter())[column] += 1
        if decision.compound is not None:
            tiers["compound"].decided += 1
            tiers["compound"].correct += item.several
            if not item.several:
                report.mistakes.append(_mistake("compound", COMPOUND, item))
        if decision.tier is None:
            continue
        tier = tiers[decision.tier]
        tier.decided += 1
        tier.decided_single += bool(item.single)
        report.several_decided += item.several
        if decision.intent == item.single:
            tier.correct += 1
            continue
        report.mistakes.append(_mistake(decision.tier, str(decision.intent), item))
        if registry.kind(str(decision.intent)) == "plan":
            tier.false_fires += 1
            if decision.read_only:
                tier.look_ups += 1
            else:
                tier.side_effecting += 1
    return report


def _mistake(tier: str, decided: str, item: Labelled) -> dict[str, Any]:
    expected: Any = list(item.expected) if isinstance(item.expected, tuple) else item.expected
    return {"tier": tier, "decided": decided, "text": item.text, "expected": expected}


# -- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    label: str
    score: float
    lead: float
    blocked: bool  # the rules saw another intent strongly (decide() does not let it decide)
    expected: Labelled
    support: float  # the label's share of the nearest examples
    read_only: bool  # the request only looks: the support floor does not apply


@dataclass(frozen=True)
class Setting:
    threshold: float
    margin: float
    support: float
    decided: int
    correct: int
    false_fires: int

    @property
    def precision(self) -> float:
        return self.correct / self.decided if self.decided else 1.0


@dataclass
class Calibration:
    seen: int  # requests the classifier was asked about (the rules abstained, one action)
    single: int  # single-action requests among all lines
    rules_correct: int  # single-action requests the rules got right
    best: Setting | None
    grid: list[Setting]
    train_seconds: float

    def describe(self, target: float) -> str:
        lines = [
            f"classifier trained in {self.train_seconds:.2f} s; it was asked about "
            f"{self.seen} requests (the rules abstained on one action)",
            "",
            "threshold margin support  decided  correct  precision  false fires",
        ]
        shown = [
            s
            for s in self.grid
            if s.margin in (0.0, 0.2, 0.4, 0.6) and s.support in (0.0, 0.4, 0.6)
        ]
        for s in shown:
            lines.append(
                f"{s.threshold:9.2f} {s.margin:6.2f} {s.support:7.2f}  {s.decided:>7}  "
                f"{s.correct:>7}  {100 * s.precision:8.1f}%  {s.false_fires:>11}"
            )
        lines.append("")
        if self.best is None:
            lines.append(f"no setting reaches precision {target:.2f} without false fires")
        else:
            b = self.best
            rules = self.rules_correct / self.single if self.single else 0.0
            total = (self.rules_correct + b.correct) / self.single if self.single else 0.0
            lines += [
                f"best: threshold {b.threshold:.2f}, margin {b.margin:.2f}, "
                f"support {b.support:.2f}: "
                f"{b.correct}/{b.decided} right (precision {100 * b.precision:.1f}%), "
                f"{b.false_fires} false fires",
                f"coverage of single-action requests: rules {100 * rules:.1f}%, "
                f"with the classifier {100 * total:.1f}%",
                "in the registry:",
                "classifier:",
                f"  threshold: {b.threshold:.2f}",
                f"  margin: {b.margin:.2f}",
                f"  support: {b.support:.2f}",
            ]
        return "\n".join(lines)


def calibrate(
    registry: IntentRegistry, labelled: Sequence[Labelled], *, target: float = 0.98
) -> Calibration:
    """The classifier threshold, margin and support floor that decide the most requests right
    while keeping precision >= ``target`` and no false fire of a ``plan`` intent; ties go to
    the stricter.

    Mirrors :func:`graph.intents.decide.decide`: the classifier is asked only where the rules
    abstain on a single action, never decides against an intent the rules saw strongly nor
    for a plan intent a rule's negative denied, and the support floor holds only for a plan
    intent on a request that is not read-only.
    """
    if registry.classifier is None or not registry.classifier.usable:
        raise ValueError("the registry has no examples: there is no classifier to calibrate")
    candidates: list[_Candidate] = []
    rules_correct = 0
    for item in labelled:
        decision: Decision = registry.explain(item.text)
        if decision.tier == "rules":
            rules_correct += decision.intent == item.single
            continue
        if decision.compound is not None or not decision.classifier:
            continue
        label, score = decision.classifier[0]
        lead = score - (decision.classifier[1][1] if len(decision.classifier) > 1 else 0.0)
        blocked = any(
            name != label and value >= registry.min_confidence
            for name, value in decision.scores.items()
        ) or (
            registry.kind(label) == "plan"
            and label in registry.rules.judge(fold_request(item.text)).denied
        )
        support = registry.classifier.read(item.text).support
        candidates.append(
            _Candidate(label, score, lead, blocked, item, support, decision.read_only)
        )
    grid: list[Setting] = []
    for t in range(30, 100, 5):
        for m in range(0, 65, 5):
            for f in range(0, 80, 10):
                threshold, margin, floor = t / 100, m / 100, f / 100
                decided = correct = fires = 0
                for c in candidates:
                    if c.label == OUT_OF_SCOPE or c.blocked:
                        continue
                    if c.score < threshold or c.lead < margin:
                        continue
                    acting = registry.kind(c.label) == "plan" and not c.read_only
                    if acting and c.support < floor:
                        continue
                    decided += 1
                    if c.label == c.expected.single:
                        correct += 1
                    elif registry.kind(c.label) == "plan":
                        fires += 1
                grid.append(Setting(threshold, margin, floor, decided, correct, fires))
    fit = [s for s in grid if s.precision >= target and s.false_fires == 0 and s.decided]
    best = max(fit, key=lambda s: (s.correct, s.support, s.threshold, s.margin), default=None)
    return Calibration(
        seen=len(candidates),
        single=sum(1 for x in labelled if x.single),
        rules_correct=rules_correct,
        best=best,
        grid=grid,
        train_seconds=registry.classifier.model().seconds,
    )
