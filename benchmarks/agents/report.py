"""The report: per agent the medians and their ratios to the streamed agent, per request
the time to the answer against the bound.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.agents.cases import CASES, bounds
from benchmarks.agents.measure import Measure
from benchmarks.agents.runners import AGENTS


def _ratio(
    measures: list[Measure], agent: str, metric: Callable[[Measure], float | None]
) -> tuple[float, float, float]:
    """The median over requests and runs of agent ÷ streamed, and the spread of runs' medians."""
    base = {(m.case, m.run): m for m in measures if m.agent == "streamed"}
    per_run: dict[int, list[float]] = {}
    for m in measures:
        if m.agent != agent:
            continue
        a, b = metric(m), metric(base[(m.case, m.run)])
        if a is not None and b:
            per_run.setdefault(m.run, []).append(a / b)
    every = [r for rs in per_run.values() for r in rs]
    medians = [statistics.median(rs) for rs in per_run.values()]
    return statistics.median(every), min(medians), max(medians)


def report(measures: list[Measure], ttft: float, rate: float, scale: float) -> dict[str, Any]:
    """The table; `ttft`, `rate`, `scale` as the run had them (for the bounds)."""
    table = {}
    for agent in AGENTS:
        mine = [m for m in measures if m.agent == agent]
        table[agent] = {
            "answered": sum(m.answered for m in mine),
            "of": len(mine),
            "llm_calls": statistics.median(m.calls for m in mine),
            "prompt_tokens": statistics.median(m.prompt_tokens for m in mine),
            "completion_tokens": statistics.median(m.completion_tokens for m in mine),
            "answer_s": statistics.median(m.answer_s for m in mine),
            "first_tool_s": statistics.median(m.first_tool_s or 0.0 for m in mine),
            "tools_done_s": statistics.median(m.tools_done_s or 0.0 for m in mine),
            "ratios": {
                "llm_calls": _ratio(measures, agent, lambda m: m.calls),
                "tokens": _ratio(measures, agent, lambda m: m.prompt_tokens + m.completion_tokens),
                "first_tool": _ratio(measures, agent, lambda m: m.first_tool_s),
                "tools_done": _ratio(measures, agent, lambda m: m.tools_done_s),
                "answer": _ratio(measures, agent, lambda m: m.answer_s),
            },
        }
    streamed = [m for m in measures if m.agent == "streamed" and m.planner_s]
    per_run: dict[int, list[float]] = {}
    for m in streamed:
        per_run.setdefault(m.run, []).append(
            (m.first_after_planner_start_s or 0) / (m.planner_s or 1)
        )
    first_share = [r for rs in per_run.values() for r in rs]
    by_case: dict[str, dict[str, Any]] = {}
    for case in CASES:
        if not any(m.case == case.name for m in measures):
            continue
        row = {}
        for agent in AGENTS:
            times = [m.answer_s for m in measures if m.agent == agent and m.case == case.name]
            row[agent] = statistics.median(times)
        best, whole = bounds(case, ttft * scale, rate / scale, scale)
        by_case[case.name] = {
            "shape": case.shape,
            **row,
            "whole_over_streamed": row["whole-plan"] / row["streamed"],
            "bound_streamed": best,
            "bound_whole": whole,
            "bound_ratio": whole / best,
        }
    return {
        "agents": table,
        "first_tool_of_planner": (
            statistics.median(first_share),
            min(statistics.median(v) for v in per_run.values()),
            max(statistics.median(v) for v in per_run.values()),
        )
        if first_share
        else None,
        "by_case": by_case,
        # The most any streamed planner could gain on these requests (see `bounds`).
        "bound_answer_ratio": statistics.median(r["bound_ratio"] for r in by_case.values()),
    }


def show(result: dict[str, Any], command: str) -> str:
    def spread(r: tuple[float, float, float]) -> str:
        return f"{r[0]:.2f} ({r[1]:.2f} to {r[2]:.2f})"

    lines = [
        f"`{command}`",
        "",
        "Each cell: the median, then (in brackets) the median ratio to streamed and the spread "
        "of the runs' median ratios.",
        "",
        "| agent | LLM calls | tokens (prompt + completion) | first tool start "
        "| last tool end | answer | answered |",
        "|---|---|---|---|---|---|---|",
    ]
    for agent, row in result["agents"].items():
        r = row["ratios"]
        lines.append(
            f"| {agent} | {row['llm_calls']:g} ({spread(r['llm_calls'])}) "
            f"| {row['prompt_tokens'] + row['completion_tokens']:g} ({spread(r['tokens'])}) "
            f"| {row['first_tool_s']:.2f} s ({spread(r['first_tool'])}) "
            f"| {row['tools_done_s']:.2f} s ({spread(r['tools_done'])}) "
            f"| {row['answer_s']:.2f} s ({spread(r['answer'])}) "
            f"| {row['answered']}/{row['of']} |"
        )
    share = result["first_tool_of_planner"]
    if share:
        lines += ["", f"streamed: first tool start ÷ planner call = {spread(share)}"]
    lines += [
        "",
        "Time to the answer per request (medians), whole-plan ÷ streamed, and the bound: the "
        "least time each cpa-planner mode can take (models and tools only) and its ratio.",
        "",
        "| request | shape | " + " | ".join(AGENTS) + " | whole ÷ streamed | bound |",
        "|---|---|" + "---|" * (len(AGENTS) + 2),
    ]
    for name, row in result["by_case"].items():
        lines.append(
            f"| {name} | {row['shape']} | "
            + " | ".join(f"{row[a]:.2f} s" for a in AGENTS)
            + f" | {row['whole_over_streamed']:.2f} | {row['bound_streamed']:.2f} s / "
            f"{row['bound_whole']:.2f} s = {row['bound_ratio']:.2f} |"
        )
    lines += ["", f"median bound of whole ÷ streamed: {result['bound_answer_ratio']:.2f}"]
    return "\n".join(lines)
