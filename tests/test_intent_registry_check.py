"""check_registry reports every problem of a registry file with its line; load refuses errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from graph.intents import (
    IntentRegistry,
    RegistryError,
    RegistryProblem,
    check_registry,
    check_registry_text,
)
from lam import Plan

# A small, clean registry; the tests break one thing at a time.
GOOD = """\
version: 1
min_confidence: 0.6
margin: 0.2
intents:
  - name: greet
    description: Greetings.
    kind: answer
    rules:
      - name: greet.en.hello
        language: en
        weight: 0.9
        keywords: [hello, hi]
      - name: greet.de.hallo
        language: de
        weight: 0.9
        keywords: [hallo, grüß*]
  - name: todo
    description: Add to-dos.
    kind: plan
    rules:
      - name: todo.en.add
        language: en
        weight: 0.9
        patterns: ['add .+ to my list']
        negative: ['shopping']
      - name: todo.de.add
        language: de
        weight: 0.9
        patterns: ['auf (die|meine) liste']
    plan_template:
      goal: "To-do: {request}"
      todos:
        - id: t1
          title: Write it down
          executor: template
          inputs: {text: "{request}"}
        - id: t2
          title: Add it
          executor: desktop
          depends_on: [t1]
"""


def _plan(registry: IntentRegistry, intent: str, request: str) -> Plan | None:
    """The intent's English act template for `request`, as a plan (None without one)."""
    filled = registry.template_for(intent, request, language="en", read_only=False)
    return filled.plan if filled else None


def write(tmp_path: Path, text: str, name: str = "intents.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_of(text: str, marker: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``marker`` (or equal to it, stripped, when
    the marker starts with ``=``)."""
    lines = enumerate(text.splitlines(), 1)
    if marker.startswith("="):
        hits = [n for n, line in lines if line.strip() == marker[1:]]
    else:
        hits = [n for n, line in lines if marker in line]
    return hits[occurrence - 1]


def errors(problems: list[RegistryProblem]) -> list[RegistryProblem]:
    return [p for p in problems if p.is_error]


def only_error(text: str) -> RegistryProblem:
    found = errors(check_registry_text(text))
    assert len(found) == 1, found
    return found[0]


# -- clean registries ---------------------------------------------------------------------------


def test_packaged_registry_is_clean() -> None:
    assert check_registry() == []
    assert check_registry(None) == []


def test_good_registry_is_clean_and_loads(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert check_registry(path) == []
    registry = IntentRegistry.load(path)
    assert registry.names() == ["greet", "todo"]
    assert registry.source == str(path)
    assert registry.match_rules("hello").intent == "greet"
    assert registry.match_rules("Grüße!").intent == "greet"  # keyword prefix, umlaut folded
    assert registry.match_rules("add milk to my list").intent == "todo"
    assert registry.match_rules("add milk to my shopping list").intent is None  # vetoed
    plan = _plan(registry, "todo", "add milk to my list")
    # A template ToDo's text keeps {request}: the template executor fills it when it runs.
    assert plan is not None and plan.todos[0].inputs == {"text": "{request}"}


def test_load_accepts_str_paths(tmp_path: Path) -> None:
    assert IntentRegistry.load(str(write(tmp_path, GOOD))).names() == ["greet", "todo"]


# -- each kind of problem, with its line --------------------------------------------------------


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("kind: answer", "kind: [answer")
    problems = check_registry(write(tmp_path, text))
    assert len(problems) == 1
    assert problems[0].message.startswith("YAML syntax error")
    # the parser notices the unclosed flow sequence on the next line or so
    assert problems[0].line is not None
    assert line_of(text, "[answer") <= problems[0].line <= line_of(text, "[answer") + 2


def test_tab_indentation_is_a_syntax_error_with_line() -> None:
    text = GOOD.replace("    kind: plan", "\tkind: plan")
    problem = only_error(text)
    assert "YAML syntax error" in problem.message
    assert problem.line == line_of(text, "\tkind: plan")


@pytest.mark.parametrize(
    ("old", "new", "marker", "needle"),
    [
        ("margin: 0.2", "margin: 0.2\nthreshold: 0.5", "threshold:", "unknown key 'threshold'"),
        (
            "    kind: answer",
            "    kind: answer\n    example: {en: [hi]}",
            "example:",
            "unknown key 'example'",
        ),
        (
            "        weight: 0.9\n        keywords: [hello, hi]",
            "        weight: 0.9\n        keyword: [hello, hi]",
            "keyword:",
            "unknown key 'keyword'",
        ),
        (
            "          executor: desktop",
            "          executor: desktop\n          owner: me",
            "owner:",
            "unknown key 'owner'",
        ),
    ],
)
def test_unknown_keys(old: str, new: str, marker: str, needle: str) -> None:
    text = GOOD.replace(old, new, 1)
    problems = errors(check_registry_text(text))
    assert any(needle in p.message and p.line == line_of(text, marker) for p in problems), problems


def test_unknown_key_in_a_rule_without_keywords_is_both_reported() -> None:
    # the misspelt key is reported, and the rule that now has nothing to match too
    text = GOOD.replace("        keywords: [hello, hi]", "        keyword: [hello, hi]")
    messages = [p.message for p in errors(check_registry_text(text))]
    assert any("unknown key 'keyword'" in m for m in messages)
    assert any("needs at least one keyword or pattern" in m for m in messages)


def test_repeated_key() -> None:
    text = GOOD.replace("    kind: answer", "    kind: answer\n    kind: plan")
    problem = only_error(text)
    assert "'kind' appears twice" in problem.message
    assert problem.line == line_of(text, "kind: plan")


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("  - name: greet\n    description", "  - description", "missing 'name'"),
        ("    description: Greetings.\n", "", "missing 'description'"),
    ],
)
def test_missing_intent_fields(old: str, new: str, needle: str) -> None:
    text = GOOD.replace(old, new)
    problems = errors(check_registry_text(text))
    assert any(needle in p.message for p in problems), problems
    # reported on the intent itself: its first remaining line
    assert problems[0].line == 5


def test_missing_rules() -> None:
    start = GOOD.index("    rules:\n      - name: greet.en.hello")
    end = GOOD.index("  - name: todo")
    text = GOOD[:start] + GOOD[end:]
    problem = only_error(text)
    assert "intent 'greet': missing 'rules'" in problem.message
    assert problem.line == line_of(text, "=- name: greet")


def test_bad_kind() -> None:
    text = GOOD.replace("kind: answer", "kind: reply")
    problem = only_error(text)
    assert "kind 'reply' must be 'plan' or 'answer'" in problem.message
    assert (problem.line, problem.column) == (line_of(text, "kind: reply"), 11)


def test_invalid_regex_names_the_regex_error() -> None:
    text = GOOD.replace("'add .+ to my list'", "'add (.+ to my list'")
    problem = only_error(text)
    assert "'add (.+ to my list' is not a valid regular expression" in problem.message
    assert "missing )" in problem.message
    assert problem.line == line_of(text, "add (.+")


def test_regex_error_position_counts_in_the_pattern_as_written() -> None:
    text = GOOD.replace("'add .+ to my list'", "'add (.+ to my list'")
    assert "at position 4" in only_error(text).message


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        (r"(a)b\1", "numbered back-references are not supported"),
        ("(?i)add", "cannot be embedded in a rule"),
    ],
)
def test_patterns_that_would_break_or_change_when_combined(pattern: str, needle: str) -> None:
    text = GOOD.replace("'add .+ to my list'", f"'{pattern}'")
    problem = only_error(text)
    assert needle in problem.message
    assert problem.line == line_of(text, pattern)


def test_patterns_of_one_rule_must_combine() -> None:
    text = GOOD.replace("'add .+ to my list'", "'(?P<x>add)', '(?P<x>put)'")
    problem = only_error(text)
    assert "rule 'todo.en.add': its patterns cannot be combined" in problem.message
    assert "redefinition of group name" in problem.message


def test_language_warning_ignores_rules_broken_otherwise() -> None:
    text = GOOD.replace("weight: 0.9", "weight: 7", 1)
    problems = check_registry_text(text)
    assert [p.severity for p in problems] == ["error"]


def test_invalid_negative_regex() -> None:
    text = GOOD.replace("negative: ['shopping']", "negative: ['shop[ping']")
    problem = only_error(text)
    assert "negative pattern" in problem.message and "unterminated" in problem.message
    assert problem.line == line_of(text, "shop[ping")


@pytest.mark.parametrize("weight", ["0", "0.0", "1.5", "-0.2", "high", "true", ".nan"])
def test_weights_outside_the_unit_interval(weight: str) -> None:
    text = GOOD.replace(
        "        weight: 0.9\n        keywords: [hello",
        f"        weight: {weight}\n        keywords: [hello",
    )
    problem = only_error(text)
    assert "greet.en.hello" in problem.message and "weight" in problem.message
    assert problem.line == line_of(text, f"weight: {weight}")


def test_weight_one_is_allowed() -> None:
    text = GOOD.replace("weight: 0.9", "weight: 1", 1)
    assert check_registry_text(text) == []


def test_duplicate_rule_names() -> None:
    text = GOOD.replace("name: todo.de.add", "name: greet.en.hello")
    problem = only_error(text)
    assert "rule 'greet.en.hello' is defined twice" in problem.message
    assert f"first on line {line_of(text, 'greet.en.hello')}" in problem.message
    assert problem.line == line_of(text, "greet.en.hello", 2)


def test_duplicate_intents() -> None:
    text = GOOD.replace("  - name: todo\n", "  - name: greet\n").replace("todo.", "greet2.")
    problem = only_error(text)
    assert "intent 'greet' is defined twice (first on line 5)" in problem.message
    assert problem.line == line_of(text, "=- name: greet", 2)


def test_reserved_and_malformed_intent_names() -> None:
    assert "reserved" in only_error(GOOD.replace("- name: greet", "- name: unknown")).message
    assert "must look like" in only_error(GOOD.replace("- name: greet", "- name: Greet Me")).message


def test_template_with_unknown_dependency() -> None:
    text = GOOD.replace("depends_on: [t1]", "depends_on: [t9]")
    problem = only_error(text)
    assert "ToDo 't2' depends on 't9', which is not a ToDo of this plan" in problem.message
    assert problem.line == line_of(text, "depends_on: [t9]")


def test_template_with_a_cycle() -> None:
    text = GOOD.replace(
        "          executor: template\n",
        "          executor: template\n          depends_on: [t2]\n",
    )
    problem = only_error(text)
    assert "Dependency cycle: 't1' depends on 't2', 't2' depends on 't1'" in problem.message
    assert problem.line == line_of(text, "- id: t1")


def test_template_with_self_dependency_and_duplicate_id() -> None:
    text = GOOD.replace("depends_on: [t1]", "depends_on: [t2]").replace("id: t2", "id: t1")
    messages = [p.message for p in errors(check_registry_text(text))]
    assert any("ToDo id 't1' is used by 2 ToDos" in m for m in messages), messages


EXECUTORS = ["desktop", "http", "human", "llm", "template"]


def test_template_with_unknown_executor() -> None:
    text = GOOD.replace("executor: desktop", "executor: robot")
    # Without the executors a run will have (intents explain), any name passes.
    assert check_registry_text(text) == []
    found = errors(check_registry_text(text, executors=EXECUTORS))
    assert len(found) == 1, found
    problem = found[0]
    assert "uses executor 'robot', which does not exist" in problem.message
    assert "'desktop', 'http', 'human', 'llm', 'template'" in problem.message
    assert (problem.line, problem.column) == (line_of(text, "executor: robot"), 21)


def test_template_may_name_an_entry_point_executor(tmp_path: Path) -> None:
    text = GOOD.replace("executor: desktop", "executor: robot")
    assert check_registry_text(text, executors=[*EXECUTORS, "robot"]) == []
    registry = IntentRegistry.load(write(tmp_path, text), executors=[*EXECUTORS, "robot"])
    plan = _plan(registry, "todo", "add milk to my list")
    assert plan is not None and plan.todos[1].executor == "robot"
    with pytest.raises(RegistryError, match="'robot', which does not exist"):
        IntentRegistry.load(write(tmp_path, text), executors=EXECUTORS)


def test_template_executor_needs_text() -> None:
    text = GOOD.replace('inputs: {text: "{request}"}', 'inputs: {body: "{request}"}')
    assert "needs inputs.text" in only_error(text).message


def test_template_text_placeholders_must_be_dependencies() -> None:
    ok = GOOD.replace(
        "          executor: desktop\n          depends_on: [t1]",
        "          executor: template\n          inputs: {text: 'Added: {t1} for {request}'}\n"
        "          depends_on: [t1]",
    )
    assert check_registry_text(ok) == []
    text = ok.replace("Added: {t1}", "Added: {t3}")
    problem = only_error(text)
    assert "uses {t3}, which is neither {request} nor one of its depends_on" in problem.message
    assert problem.line == line_of(text, "Added: {t3}")


def test_template_missing_title_and_bad_types() -> None:
    text = GOOD.replace("          title: Add it\n", "").replace(
        "depends_on: [t1]", "depends_on: [t1]\n          requires_approval: maybe"
    )
    messages = [p.message for p in errors(check_registry_text(text))]
    assert any("ToDo 't2': missing 'title'" in m for m in messages)
    assert any("requires_approval 'maybe' must be true or false" in m for m in messages)


def test_template_without_todos() -> None:
    text = GOOD[: GOOD.index("      todos:")]
    problem = only_error(text)
    assert "missing 'todos'" in problem.message


def test_missing_language_is_a_warning_and_still_loads(tmp_path: Path) -> None:
    start = GOOD.index("      - name: greet.de.hallo")
    end = GOOD.index("  - name: todo")
    text = GOOD[:start] + GOOD[end:]
    problems = check_registry_text(text)
    assert len(problems) == 1
    assert problems[0].severity == "warning"
    assert "intent 'greet' has no 'de' rules" in problems[0].message
    assert problems[0].line == line_of(text, "    rules:")
    assert "warning:" in str(problems[0])
    assert IntentRegistry.load(write(tmp_path, text)).names() == ["greet", "todo"]


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("version: 1\n", "", "missing 'version'"),
        ("version: 1", "version: 2", "version 2 is not supported"),
        ("min_confidence: 0.6", "min_confidence: 0", "min_confidence 0 must be greater than 0"),
        ("margin: 0.2", "margin: 1.0", "margin 1.0 must be less than 1"),
        ("    description: Greetings.", "    description: ''", "must be a non-empty string"),
        ("        language: en\n", "", "missing 'language'"),
    ],
)
def test_top_level_and_field_problems(old: str, new: str, needle: str) -> None:
    problems = errors(check_registry_text(GOOD.replace(old, new, 1)))
    assert any(needle in p.message for p in problems), problems
    assert all(p.line is not None for p in problems)


def test_empty_and_non_mapping_documents() -> None:
    assert "empty" in only_error("").message
    assert "must be a mapping" in only_error("- a\n- b\n").message
    assert "intents must be a non-empty list" in only_error("version: 1\nintents: []\n").message


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    text = (
        GOOD.replace("kind: answer", "kind: reply")
        .replace("'add .+ to my list'", "'add (.+'")
        .replace("weight: 0.9", "weight: 2", 1)
        .replace("executor: desktop", "executor: robot")
    )
    problems = errors(check_registry(write(tmp_path, text), executors=EXECUTORS))
    assert [p.line for p in problems] == [
        line_of(text, "kind: reply"),
        line_of(text, "weight: 2"),
        line_of(text, "add (.+"),
        line_of(text, "executor: robot"),
    ]


# -- load refuses errors with one clear line ----------------------------------------------------


def test_load_error_is_one_line_naming_file_line_and_count(tmp_path: Path) -> None:
    text = GOOD.replace("kind: answer", "kind: reply").replace("executor: desktop", "executor: x")
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as info:
        IntentRegistry.load(path, executors=EXECUTORS)
    message = str(info.value)
    assert "\n" not in message
    assert f"{path}:{line_of(text, 'kind: reply')}:" in message
    assert "kind 'reply' must be 'plan' or 'answer'" in message
    assert message.endswith("(and 1 more problem)")
    assert isinstance(info.value, ValueError)
    assert len(info.value.problems) == 2


def test_load_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nintents:\n  - name: [x\n    bad: : :\n")
    with pytest.raises(RegistryError) as info:
        IntentRegistry.load(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value) and "YAML syntax error" in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RegistryError, match="cannot read the file"):
        IntentRegistry.load(path)
    assert "cannot read the file" in check_registry(path)[0].message


def test_problem_str() -> None:
    assert str(RegistryProblem("bad", 3, 7)) == "line 3, column 7: bad"
    assert str(RegistryProblem("bad")) == "bad"


# -- the keys of the tiers: templates per variant and language, effects, examples, replies -------

TIERED = """\
version: 1
classifier: {threshold: 0.7, margin: 0.3}
out_of_scope:
  en: [order a pizza]
intents:
  - name: greet
    description: Greetings.
    kind: answer
    rules:
      - {name: greet.en, language: en, weight: 0.9, keywords: [hello]}
      - {name: greet.de, language: de, weight: 0.9, keywords: [hallo]}
    phrases:
      hello: {en: [hello, hi], de: [hallo]}
    replies:
      hello: {en: Hello!, de: Hallo!}
    examples:
      en: [hello there]
  - name: todo
    description: To-dos.
    kind: plan
    rules:
      - {name: todo.en, language: en, weight: 0.9, keywords: [to-do]}
      - {name: todo.de, language: de, weight: 0.9, keywords: [aufgabe]}
    examples:
      en: [add a to-do]
      de: [neue Aufgabe]
    templates:
      act:
        en:
          goal: "To-do: {request}"
          todos:
            - {id: t1, title: Add it, executor: desktop, effect: change}
        de:
          goal: "Aufgabe: {request}"
          todos:
            - {id: t1, title: Eintragen, executor: desktop, effect: change}
      read:
        en:
          goal: "To-dos: {request}"
          todos:
            - {id: t1, title: Read them, executor: desktop, effect: read}
        de:
          goal: "Aufgaben: {request}"
          todos:
            - {id: t1, title: Lesen, executor: desktop, effect: read}
"""


def test_tiered_registry_is_clean_and_loads() -> None:
    assert check_registry_text(TIERED, executors=EXECUTORS) == []
    registry = IntentRegistry.from_text(TIERED)
    assert registry.classifier_spec.threshold == 0.7
    assert registry.classifier_spec.support == 0.0  # no floor unless the registry sets one
    assert registry.out_of_scope == {"en": ("order a pizza",)}
    todo = registry.intents["todo"]
    assert set(todo.templates) == {"act", "read"}
    assert todo.templates["act"]["de"].effects == {"t1": "change"}
    assert registry.intents["greet"].replies["hello"]["de"] == "Hallo!"


@pytest.mark.parametrize(
    ("old", "new", "marker", "needle"),
    [
        (
            "executor: desktop, effect: change}\n        de:",
            "executor: desktop, effect: Explode now}\n        de:",
            "effect: Explode now",
            "effect 'Explode now' must be none, read, or one lower-case word",
        ),
        (
            "title: Read them, executor: desktop, effect: read}",
            "title: Read them, executor: desktop, effect: delete}",
            "effect: delete",
            "templates.read.en: ToDo 't1': effect 'delete' must be 'read' or 'none'",
        ),
        (
            "title: Read them, executor: desktop, effect: read}",
            "title: Read them, executor: desktop}",
            "title: Read them",
            "ToDo 't1': missing 'effect': a read template's step may only read: read or none",
        ),
        (
            "      read:\n",
            "      peek:\n",
            "peek:",
            "templates: unknown key 'peek' (allowed: act, read)",
        ),
        (
            "      hello: {en: Hello!, de: Hallo!}",
            "      bye: {en: Bye!}",
            "bye:",
            "reply for 'bye', which no phrase says (default, hello)",
        ),
        (
            "threshold: 0.7",
            "threshold: 1.5",
            "threshold",
            "classifier.threshold 1.5 must be less than or equal to 1",
        ),
        (
            "threshold: 0.7",
            "threshold: 0.7, support: 2",
            "support",
            "classifier.support 2 must be less than or equal to 1",
        ),
        (
            "      en: [add a to-do]",
            "      en: [hello there]",
            "=intents:",
            "given for greet and for todo",
        ),
        (
            "      en: [add a to-do]",
            "      english: [add a to-do]",
            "english:",
            "not a language code",
        ),
    ],
)
def test_problems_in_the_tier_keys(old: str, new: str, marker: str, needle: str) -> None:
    text = TIERED.replace(old, new, 1)
    assert text != TIERED
    problems = errors(check_registry_text(text))
    assert any(needle in p.message for p in problems), problems
    if not marker.startswith("="):
        assert any(p.line == line_of(text, marker) for p in problems), problems


def test_template_without_a_german_version_is_a_warning() -> None:
    start = TIERED.index('        de:\n          goal: "Aufgaben')
    text = TIERED[:start]
    problems = check_registry_text(text)
    assert [p.severity for p in problems] == ["warning"]
    assert "template 'read' has no 'de' version" in problems[0].message


def test_plan_template_and_templates_together_are_an_error() -> None:
    text = TIERED.replace(
        "    templates:\n",
        "    plan_template: {goal: x, todos: [{id: t1, title: X, executor: desktop}]}\n"
        "    templates:\n",
    )
    assert "use either plan_template or templates" in only_error(text).message


def test_packaged_registry_is_clean_against_the_real_executors() -> None:
    from graph.builder import default_executors
    from graph.config import Settings

    names = default_executors(Settings()).names()
    assert check_registry(executors=names) == []
    assert IntentRegistry.load(executors=names).names()
