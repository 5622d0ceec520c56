"""`intents eval` and `intents calibrate` on the labelled sets we ship, and the bars: precision
>= 0.98 for every tier, the classifier well above the rules' coverage, no request with several
actions decided by a rule or the classifier; on the multi-action set, at most 2 % of the
requests with several actions decided as one intent and no side-effecting false fire."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli import exits
from graph.intents import IntentRegistry, fold
from graph.intents.evaluate import (
    LabelledFileError,
    Report,
    calibrate,
    evaluate,
    read_labelled,
)
from graph.intents.registry import default_registry
from tests.support.cli_harness import ROOT, clean_env, run_cli

DATA = ROOT / "tests" / "data"
EVAL_SETS = [DATA / "intents_eval_en.jsonl", DATA / "intents_eval_de.jsonl"]
CALIBRATION = DATA / "intents_calibration.jsonl"
MULTI = DATA / "intents_multi.jsonl"
SEVERAL_DECIDED = 0.02  # requests with several actions decided as one intent, at most
PRECISION = 0.98
COVERAGE_GAIN = 0.10  # what "well above the rules alone" means here


def shortfalls(report: Report) -> list[str]:
    """What keeps a report from the issue's bars (empty: all met)."""
    found = []
    for name, tier in report.tiers.items():
        if tier.precision is not None and tier.precision < PRECISION:
            found.append(f"{name} precision {tier.precision:.3f}")
        if tier.false_fires:
            found.append(f"{name} false fires {tier.false_fires}")
    if report.several_decided:
        found.append(f"{report.several_decided} requests with several actions decided")
    gain = report.coverage("rules", "classifier") - report.coverage("rules")
    if gain < COVERAGE_GAIN:
        found.append(f"the classifier adds only {gain:.3f} coverage")
    return found


@pytest.mark.parametrize("path", EVAL_SETS, ids=lambda p: p.name)
def test_shipped_sets_meet_the_bars(path: Path) -> None:
    registry = default_registry()
    labelled = read_labelled(path, registry.names())
    assert len(labelled) >= 250
    report = evaluate(registry, labelled)
    assert report.several >= 30 and report.out_of_scope >= 30 and report.single >= 200
    assert shortfalls(report) == [], report.describe()
    for name in ("rules", "classifier", "compound"):
        assert report.tiers[name].decided > 0, name


def test_the_bars_can_fail() -> None:
    # the same registry with a classifier that decides on any hunch
    text = (ROOT / "prompts" / "intents.yaml").read_text(encoding="utf-8")
    reckless = text.replace(
        "  threshold: 0.65\n  margin: 0.6\n", "  threshold: 0.05\n  margin: 0\n"
    )
    assert reckless != text
    registry = IntentRegistry.from_text(reckless)
    report = evaluate(registry, read_labelled(CALIBRATION, registry.names()))
    problems = shortfalls(report)
    assert any(p.startswith("classifier precision") for p in problems), report.describe()
    assert any(p.startswith("classifier false fires") for p in problems)


def test_the_labelled_sets_are_not_the_training_examples() -> None:
    registry = default_registry()
    examples = {
        fold(text).strip()
        for spec in registry.intents.values()
        for texts in spec.examples.values()
        for text in texts
    } | {fold(t).strip() for texts in registry.out_of_scope.values() for t in texts}
    seen: dict[str, str] = {}
    for path in [*EVAL_SETS, CALIBRATION, MULTI]:
        for item in read_labelled(path, registry.names()):
            key = fold(item.text).strip()
            assert key not in examples, f"{path.name}: {item.text!r} is a training example"
            if key in seen and seen[key] != path.name:
                pytest.fail(f"{item.text!r} is in {seen[key]} and in {path.name}")
            seen[key] = path.name


def test_the_issues_requests_are_in_the_sets() -> None:
    texts = {
        item.text for path in EVAL_SETS for item in read_labelled(path, default_registry().names())
    }
    for text in (
        "I need a reminder to water the plants",
        "Read me my to-do list",
        "Add a dentist appointment to my calendar",
        "Take milk off my to-do list",
        "Book a table, then send Anna the address and set an alarm",
        "Hallo, guten Morgen!",
        "Hi, good morning!",
    ):
        assert text in texts


def test_calibration_picks_a_setting_that_keeps_precision() -> None:
    registry = default_registry()
    result = calibrate(registry, read_labelled(CALIBRATION, registry.names()))
    assert result.best is not None
    assert result.best.precision >= PRECISION and result.best.false_fires == 0
    looser = [s for s in result.grid if s.correct > result.best.correct]
    assert all(s.precision < PRECISION or s.false_fires for s in looser)
    # the registry is no looser than the pick (stricter for the open world: CLINC150's dev
    # split, docs/front-door.md), and its own setting keeps the bars on this set too
    spec = registry.classifier_spec
    assert spec.threshold >= result.best.threshold and spec.margin >= result.best.margin
    assert spec.support >= result.best.support
    (own,) = [
        s
        for s in result.grid
        if (s.threshold, s.margin, s.support) == (spec.threshold, spec.margin, spec.support)
    ]
    assert own.precision >= PRECISION and own.false_fires == 0 and own.decided


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("not json", ":1: not JSON"),
        ('{"intent": "calendar"}', ':1: expected {"text": str'),
        ('{"text": "x"}', ":1: intent must be"),
        ('{"text": "x", "intent": "weather"}', ":1: unknown intent weather"),
        ('{"text": " ", "intent": null}', ":1: the text is empty"),
        ('{"text": "x", "intent": []}', ":1: a list of intents has one entry per action"),
    ],
)
def test_bad_labelled_lines_are_named(tmp_path: Path, line: str, needle: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(LabelledFileError) as info:
        read_labelled(path, default_registry().names())
    assert f"{path}{needle}" in str(info.value)


def test_eval_and_calibrate_on_the_command_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    text = run_cli(["intents", "eval", str(EVAL_SETS[1])], env)
    assert text.returncode == 0, text.stderr
    assert "tier         decided  correct  precision  false fires" in text.stdout
    assert "confusion (rows: expected, columns: decided)" in text.stdout
    as_json = run_cli(["intents", "eval", "--json", str(EVAL_SETS[1])], env)
    report = json.loads(as_json.stdout)
    assert set(report["tiers"]) == {"rules", "classifier", "compound"}
    assert report["several_actions_decided"] == 0
    assert report["coverage"]["rules+classifier"] > report["coverage"]["rules"]
    assert report["confusion"]["<several>"] == {"<compound>": report["several_actions"]}

    calibrated = run_cli(["intents", "calibrate", str(CALIBRATION)], env)
    assert calibrated.returncode == 0, calibrated.stderr
    assert re.search(r"best: threshold 0\.\d\d, margin 0\.\d\d, support 0\.\d\d", calibrated.stdout)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hello", "intent": "smalltalk"}\n{"text": 1}\n')
    failed = run_cli(["intents", "eval", str(bad)], env)
    assert failed.returncode == exits.FAILED
    assert (
        failed.stderr.strip()
        == f'cpa-planner: error: {bad}:2: expected {{"text": str, "intent": ...}}'
    )
    missing = run_cli(["intents", "calibrate", str(tmp_path / "nope.jsonl")], env)
    assert missing.returncode == exits.FAILED and "cannot read the file" in missing.stderr


def test_the_multi_action_set_meets_its_bars() -> None:
    registry = default_registry()
    labelled = read_labelled(MULTI, registry.names())
    report = evaluate(registry, labelled)
    several = [x for x in labelled if x.several]
    assert len(several) >= 200 and report.single + report.out_of_scope >= 30
    assert all(2 <= len(x.expected) <= 4 for x in several if isinstance(x.expected, tuple))
    # English and German, and actions no intent serves
    assert any(None in x.expected for x in several if isinstance(x.expected, tuple))
    assert {registry.decide(x.text).language for x in several} == {"en", "de"}
    assert report.several_decided <= SEVERAL_DECIDED * report.several, report.describe()
    for name in ("rules", "classifier"):
        assert report.tiers[name].side_effecting == 0, report.describe()
    # single actions with an "and" inside stay single
    split = [m for m in report.mistakes if m["tier"] == "compound"]
    assert len(split) <= 0.05 * (report.single + report.out_of_scope), split


def test_eval_tells_side_effecting_fires_from_look_ups(tmp_path: Path) -> None:
    path = tmp_path / "fires.jsonl"
    lines = [
        # read-only, the files intent fires: a look-up
        {"text": "Where is the PDF of my phone bill stored?", "intent": None},
        # not read-only: a side-effecting fire
        {"text": "Move my phone bill into the archive folder", "intent": None},
        {"text": "Book a table, then send Anna the address", "intent": [None, "email"]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    registry = default_registry()
    report = evaluate(registry, read_labelled(path, registry.names()))
    rules = report.tiers["rules"]
    assert (rules.false_fires, rules.side_effecting, rules.look_ups) == (2, 1, 1)
    tiers = report.to_json_dict()["tiers"]["rules"]
    assert (tiers["side_effecting_fires"], tiers["look_up_fires"]) == (1, 1)
    assert "false fires (side-effecting, look-ups)" in report.describe()
    assert "2 (1, 1)" in report.describe()
    assert report.several_decided == 0
