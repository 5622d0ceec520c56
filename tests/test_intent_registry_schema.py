"""The registry file's models: its JSON Schema is theirs, committed where editors find it, and
agrees with the check; the specs a registry loads to say what its file says, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cli.main import main
from graph.intents import check_registry, check_registry_text
from graph.intents.registry_check import parse_registry
from graph.intents.spec import DEFAULT_CLASSIFIER_MARGIN, DEFAULT_CLASSIFIER_THRESHOLD
from graph.intents.text import fold_pattern

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "prompts" / "intents.schema.json"
REGISTRIES = [
    ROOT / "prompts" / "intents.yaml",
    *sorted((ROOT / "tests" / "data").glob("*_intents.yaml")),
    ROOT / "benchmarks" / "workloads" / "agents_intents.yaml",
]
# the registry's own reader: libyaml where PyYAML has it (it reads a few flow mappings the
# pure-Python parser refuses)
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    return yaml.load(text, Loader=LOADER)


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_the_generated_one(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["intents", "schema"]) == 0
    printed = capfd.readouterr().out
    assert printed == SCHEMA.read_text(encoding="utf-8"), (
        "the models changed: .venv/bin/cpa-planner intents schema > prompts/intents.schema.json"
    )


@pytest.mark.parametrize("path", REGISTRIES, ids=lambda p: p.name)
def test_every_registry_of_the_repo_meets_the_schema(path: Path) -> None:
    errors = [e.message for e in validator().iter_errors(load(path.read_text(encoding="utf-8")))]
    assert errors == []
    assert all(not p.is_error for p in check_registry(path))


def test_the_packaged_registry_names_its_schema() -> None:
    first = (ROOT / "prompts" / "intents.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA.name}"


SMALL = """\
version: 1
intents:
  - name: todo
    description: To-dos.
    rules:
      - {name: todo.en, language: en, weight: 0.9, keywords: [to-do]}
      - {name: todo.de, language: de, weight: 0.9, keywords: aufgabe}
    examples: {en: [add a to-do]}
    templates:
      read:
        en: {goal: "To-dos", todos: [{id: t1, title: Read, executor: desktop, effect: read}]}
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("version: 1", "version: 1\nthreshold: 0.5"),  # an unknown key
        ("weight: 0.9, keywords: [to-do]", "weight: 2, keywords: [to-do]"),
        ("examples: {en:", "examples: {english:"),  # not a language code
        ("effect: read}", "effect: delete}"),  # a read template's step that changes things
        ("effect: read}", "requires_approval: 'no', effect: read}"),  # a string, not a bool
        ("description: To-dos.", "description: ''"),
        ("keywords: aufgabe", "keywords: [3]"),
    ],
)
def test_the_schema_refuses_what_the_check_refuses(old: str, new: str) -> None:
    assert validator().is_valid(load(SMALL))
    assert not any(p.is_error for p in check_registry_text(SMALL))
    text = SMALL.replace(old, new, 1)
    assert text != SMALL
    assert not validator().is_valid(load(text))
    assert any(p.is_error for p in check_registry_text(text))


def _listed(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _stripped(per_language: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    return {lang: tuple(t.strip() for t in _listed(texts)) for lang, texts in per_language.items()}


def _plan(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    todos = [{k: v for k, v in todo.items() if k != "effect"} for todo in raw["todos"]]
    effects = {t["id"]: t["effect"] for t in reversed(raw["todos"]) if "effect" in t}
    return {**raw, "todos": todos}, effects


@pytest.mark.parametrize("path", REGISTRIES, ids=lambda p: p.name)
def test_specs_say_what_the_file_says(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    raw = load(text)
    _, spec = parse_registry(text)
    assert spec is not None
    assert spec.min_confidence == raw.get("min_confidence", 0.6)
    assert spec.margin == raw.get("margin", 0.2)
    classifier = raw.get("classifier", {})
    assert spec.classifier.threshold == classifier.get("threshold", DEFAULT_CLASSIFIER_THRESHOLD)
    assert spec.classifier.margin == classifier.get("margin", DEFAULT_CLASSIFIER_MARGIN)
    abstain = _listed(raw.get("abstain_patterns", []))
    assert spec.abstain_patterns == tuple(fold_pattern(p) for p in abstain)
    assert spec.out_of_scope == _stripped(raw.get("out_of_scope", {}))
    assert [i.name for i in spec.intents] == [i["name"] for i in raw["intents"]]
    for intent, written in zip(spec.intents, raw["intents"], strict=True):
        assert intent.description == written["description"].strip()
        assert intent.kind == written.get("kind", "plan")
        lists = ("keywords", "patterns", "negative")
        rules = [
            (r["name"], r["language"], r["weight"], *(_listed(r.get(key, [])) for key in lists))
            for r in written["rules"]
        ]
        assert [
            (r.name, r.language, r.weight, r.keywords, r.patterns, r.negative) for r in intent.rules
        ] == rules
        templates = written.get("templates", {})
        if "plan_template" in written:
            templates = {"act": {"*": written["plan_template"]}}
        assert set(intent.templates) == set(templates)
        for variant, versions in templates.items():
            assert set(intent.templates[variant]) == set(versions)
            for language, plan in versions.items():
                made = intent.templates[variant][language]
                assert (made.plan, made.effects) == _plan(plan)
        assert intent.examples == _stripped(written.get("examples", {}))
        phrases = written.get("phrases", {})
        assert intent.phrases == {act: _stripped(texts) for act, texts in phrases.items()}
        replies = written.get("replies", {})
        assert intent.replies == {
            act: {lang: text.strip() for lang, text in texts.items()}
            for act, texts in replies.items()
        }
        assert intent.labels == {k: v.strip() for k, v in written.get("labels", {}).items()}
