"""`cpa-planner intents explain|check`: the rules engine alone (no LangGraph, no LLM, no Redis)."""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

from cli.exits import CONFIG, FAILED, OK, CLIError
from graph.intents import IntentRegistry, RegistryError, RuleDecision, check_registry


def registry_path(explicit: str | None) -> str | None:
    """The registry file: --registry, else CPA_INTENTS_PATH, else the packaged default.

    Read straight from the environment, not through Settings: an unrelated bad setting
    (say a misspelt LLM provider) must not stop anyone from checking their rules.
    """
    env = os.environ.get("CPA_INTENTS_PATH", "").strip()
    return explicit or env or None


def _line(decision: RuleDecision) -> str:
    if decision.intent is None:
        return f"-\t0.00\t-\t{decision.text}"
    return f"{decision.intent}\t{decision.confidence:.2f}\t{decision.rule}\t{decision.text}"


def explain(text: str, *, as_json: bool, registry: str | None, out: TextIO = sys.stdout) -> int:
    try:
        rules = IntentRegistry.load(registry_path(registry))
    except RegistryError as exc:
        raise CLIError(str(exc), CONFIG) from None
    if text != "-":
        decision = rules.explain(text)
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
        decision = rules.classify(line)
        out.write(
            json.dumps(decision.to_json_dict(), ensure_ascii=False) if as_json else _line(decision)
        )
        out.write("\n")
    return OK


def check(path: str | None, *, out: TextIO = sys.stdout) -> int:
    """Every problem as `FILE:LINE:COLUMN: severity: message` (the form editors link)."""
    target = registry_path(path)
    shown = target or "the packaged registry (prompts/intents.yaml)"
    problems = check_registry(target)
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
