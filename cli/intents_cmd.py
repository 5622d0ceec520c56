"""`cpa-planner intents explain|check|schema|eval|calibrate`: the tiers alone (no LangGraph,
no LLM).

`explain` must stay fast: it loads the registry without checking executors, and the
classifier trains only when a request reaches it. `check` builds the real executor registry
(built-ins and entry points) so a template naming an unknown executor is an error.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from cli.exits import CONFIG, FAILED, OK, CLIError
from cli.settings import CliSettings
from graph.intents import (
    Decision,
    IntentRegistry,
    RegistryError,
    check_registry,
    registry_json_schema,
)


def registry_path(explicit: str | None) -> str | None:
    """The registry file: --registry, else CPA_INTENTS_PATH, else the packaged default.

    Read through `CliSettings`, not the graph's Settings: an unrelated bad setting (say a
    misspelt LLM provider) must not stop anyone from checking their rules.
    """
    return explicit or CliSettings.from_env().intents_path


def _load(registry: str | None) -> IntentRegistry:
    try:
        return IntentRegistry.load(registry_path(registry))
    except RegistryError as exc:
        raise CLIError(str(exc), CONFIG) from None


def _line(decision: Decision) -> str:
    if decision.intent is None:
        why = f"compound: {decision.compound.reason}" if decision.compound else "-"
        return f"-\t0.00\t{why}\t{decision.text}"
    who = decision.rule if decision.tier == "rules" else "classifier"
    return f"{decision.intent}\t{decision.confidence:.2f}\t{who}\t{decision.text}"


def explain(text: str, *, as_json: bool, registry: str | None, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # the stream of the call (a test may swap it)
    intents = _load(registry)
    if text != "-":
        decision = intents.explain(text)
        out.write(
            json.dumps(decision.to_json_dict(), ensure_ascii=False) + "\n"
            if as_json
            else decision.describe() + "\n"
        )
        return OK
    # One request per line, one registry for all of them: thousands of lines take a second.
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue  # a blank line is no request
        decision = intents.decide(line)
        out.write(
            json.dumps(decision.to_json_dict(), ensure_ascii=False) if as_json else _line(decision)
        )
        out.write("\n")
    return OK


def _executor_names() -> list[str]:
    """The executors a run would have: built-ins and entry points (LangGraph loads here)."""
    from graph.builder import default_executors
    from graph.config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError:
        settings = Settings()  # a bad unrelated setting must not stop the check
    return default_executors(settings).names()


def check(path: str | None, *, out: TextIO | None = None) -> int:
    """Every problem as `FILE:LINE:COLUMN: severity: message` (the form editors link)."""
    out = out or sys.stdout  # the stream of the call (a test may swap it)
    target = registry_path(path)
    shown = target or "the packaged registry (prompts/intents.yaml)"
    problems = check_registry(target, executors=_executor_names())
    for problem in problems:
        where = target or "prompts/intents.yaml"
        if problem.line is not None:
            where += f":{problem.line}"
            if problem.column is not None:
                where += f":{problem.column}"
        out.write(f"{where}: {problem.severity}: {problem.message}\n")
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    if errors:
        print(
            f"{shown}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)}",
            file=sys.stderr,
        )
        return FAILED
    note = f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""
    print(f"{shown}: OK{note}", file=sys.stderr)
    return OK


def schema(*, out: TextIO | None = None) -> int:
    """The registry file's JSON Schema, as committed in prompts/intents.schema.json."""
    out = out or sys.stdout  # the stream of the call (a test may swap it)
    out.write(json.dumps(registry_json_schema(), indent=2, ensure_ascii=False) + "\n")
    return OK


def evaluate(path: str, *, as_json: bool, registry: str | None, out: TextIO | None = None) -> int:
    """Precision, coverage and false fires per tier on a labelled JSON Lines file."""
    out = out or sys.stdout  # the stream of the call (a test may swap it)
    from graph.intents.evaluate import LabelledFileError, evaluate, read_labelled

    intents = _load(registry)
    try:
        labelled = read_labelled(path, intents.names())
    except LabelledFileError as exc:
        raise CLIError(str(exc), FAILED) from None
    report = evaluate(intents, labelled)
    if as_json:
        out.write(json.dumps(report.to_json_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(report.describe() + "\n")
    return OK


def calibrate(path: str, *, target: float, registry: str | None, out: TextIO | None = None) -> int:
    """The classifier threshold, margin and support floor, measured on a labelled file."""
    out = out or sys.stdout  # the stream of the call (a test may swap it)
    from graph.intents.evaluate import LabelledFileError, calibrate, read_labelled

    if not 0.0 < target <= 1.0:
        raise CLIError(f"--precision {target} must be in (0, 1]", FAILED)
    intents = _load(registry)
    try:
        labelled = read_labelled(path, intents.names())
        result = calibrate(intents, labelled, target=target)
    except (LabelledFileError, ValueError) as exc:
        raise CLIError(str(exc), FAILED) from None
    out.write(result.describe(target) + "\n")
    return OK if result.best is not None else FAILED
