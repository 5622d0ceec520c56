"""TaskBench: our planner's plans against its gold tool graphs, beside TaskBench's own prompt.

    python -m benchmarks.taskbench --tools tool_desc.json --data data.json
        [--requests user_requests.json] [--limit N] [--types chain,dag]
        [--base-url URL --model NAME] [--timeout S] [--results FILE [--resume]] [--json]

TaskBench (microsoft/JARVIS, `taskbench/`) gives each domain a tool catalogue
(`tool_desc.json`, read by `benchmarks.taskbench_data`) and requests with gold tool graphs
(`data.json`, one JSON object a line:
`id`, `type` single/chain/dag, `task_nodes`, `task_links`; the shipped files' `tool_nodes`/
`tool_links`, JSON in strings, are read too). For each request (those of `--types`, the
first `--limit`), two answers from the same model:

    ours      the planner's one planning call (`nodes.plan.draft_plan`): the domain's tools
              as the whole catalogue (`graph.tools.files` loads `tool_desc.json`), narrowed
              to `planner_max_tools` for the request, the plan's JSON Schema generated from
              it; a plan cut off at the token limit is asked for again with fewer steps
              allowed (8, 4, 2), as the `plan` node does. The plan is written as a TaskBench
              graph: a step per node, arguments in the tool's order, an argument that is an
              earlier step's output (`{"$step": N}`) as `<node-j>` (the typed domains) or the
              tool's name (the daily-life APIs), each dependency a link.
    baseline  TaskBench's own prompt (`benchmarks.taskbench_prompt`, after `inference.py`,
              no demonstrations: the tool list as
              JSON lines, its # GOAL # and # REQUIREMENTS #) and token limit (2000), the
              answer parsed as theirs parses it (no reformatting round).

Both sample as inference.py does (temperature 0.2, top_p 0.1, presence penalty 1.05), so
what differs is the prompt and our schema; ours keeps the planner's token limit (1024).

Both are scored with TaskBench's metric definitions (`benchmarks.taskbench_metrics`: node,
edge, argument-name and argument-value F1) over every request: an answer that is no graph
counts as an empty one (TaskBench's `evaluate.py` leaves such requests out altogether;
`answered` says how many there were). `valid` is the share of requests answered with a
graph whose every node names a catalogue tool with arguments its schema accepts;
`checked`, for ours, that `check` finds no problem in the plan.

The model is llama.cpp's llama-server with SmolLM2-135M-Instruct (`make llm-server`),
started on a free port with an 8192-token context (TaskBench's prompt lists every tool)
and one thread, or any OpenAI-compatible server (`--base-url`, `--model`). Every request
is planned by ours first, then asked with TaskBench's prompt (whose long tool list then
stays in the server's prompt cache). `--results` writes a JSON line per request and side as it is
done; `--resume` keeps the lines already there and asks only for the rest; `--sides ours`
asks only our planner (the baseline's answers do not change with it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.taskbench_data import EXECUTOR, Domain, InputError, Request, load_domain
from benchmarks.taskbench_metrics import Scores
from benchmarks.taskbench_prompt import ask_baseline, baseline_prompt, parse_baseline
from graph.config import Settings
from graph.intents import default_registry
from graph.llm import ChatModels, LLMError, LLMTruncatedError, build_chat_model
from graph.plan_steps import max_steps
from graph.state import IntentFound, action_parts
from graph.tools.arguments import schema_errors
from graph.tools.catalogue import Catalogue
from graph.tools.narrowing import narrow
from lam import Plan
from lam.tools import step_reference
from nodes.check import coverage_problems, problems_of
from nodes.intent import found_without_llm
from nodes.plan import draft_plan

#: Fewer steps allowed after an answer cut off at the token limit.
STEP_BUDGETS = (8, 4, 2)
#: TaskBench's sampling (inference.py), for both sides, and its token limit.
SAMPLING = {"top_p": 0.1, "frequency_penalty": 0.0, "presence_penalty": 1.05}
SAMPLING_TEMPERATURE = 0.2
BASELINE_MAX_TOKENS = 2000
SIDES = ("ours", "baseline")
#: The llama-server context for this benchmark: TaskBench's prompt holds every tool.
CONTEXT = 8192
#: One thread: on a shared 2-core machine two of llama.cpp's threads wait for each other
#: (measured: 17 tokens/s with one, 2 with two, while other work ran).
THREADS = 1
RAW_KEPT = 4000


# -- our planner ---------------------------------------------------------------------------


def plan_graph(plan: Plan, catalogue: Catalogue, typed: bool) -> dict[str, Any]:
    """A plan as a TaskBench graph (see the module docstring)."""
    index = {todo.id: n for n, todo in enumerate(plan.todos)}
    names = [todo.tool.name if todo.tool else todo.executor for todo in plan.todos]
    nodes = []
    for todo, name in zip(plan.todos, names, strict=True):
        given = dict(todo.tool.arguments if todo.tool is not None else todo.inputs)
        entry = catalogue.get(name)
        order = list((entry.tool.input_schema.get("properties") or {}) if entry else {})
        keys = [k for k in order if k in given] + [k for k in given if k not in order]
        arguments: list[Any] = []
        for key in keys:
            ref = step_reference(given[key])
            if typed:
                value = f"<node-{index[ref]}>" if ref in index else given[key]
                arguments.append(value if isinstance(value, str) else json.dumps(value))
            else:
                value = names[index[ref]] if ref in index else given[key]
                arguments.append({"name": key, "value": value})
        nodes.append({"task": name, "arguments": arguments})
    links = [
        {"source": names[index[dep]], "target": name}
        for todo, name in zip(plan.todos, names, strict=True)
        for dep in todo.depends_on
        if dep in index
    ]
    return {"task_nodes": nodes, "task_links": links}


def graph_valid(graph: Mapping[str, Any] | None, catalogue: Catalogue, typed: bool) -> bool:
    """Every node names a catalogue tool with arguments its schema accepts (a `<node-j>` or
    a reference counts as given)."""
    if graph is None:
        return False
    nodes = graph.get("task_nodes")
    if not isinstance(nodes, list) or not nodes:
        return False
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("task"), str):
            return False
        entry = catalogue.tool(node["task"])
        if entry is None:
            return False
        raw = node.get("arguments") or []
        if not isinstance(raw, list):
            return False
        schema = entry.tool.input_schema
        if typed:
            order = list(schema.get("properties") or {})
            if len(raw) > len(order):
                return False
            arguments = dict(zip(order, raw, strict=False))
        else:
            if not all(isinstance(a, dict) and isinstance(a.get("name"), str) for a in raw):
                return False
            arguments = {a["name"]: a.get("value") for a in raw}
        if schema_errors(arguments, schema):
            return False
    return True


def front_door(request: str) -> IntentFound:
    """What the graph's `intent` step finds before planning, without an LLM (the packaged
    intent registry): the request's actions, when it has several, and the intents seen."""
    return found_without_llm(default_registry(), request)


async def plan_ours(
    models: ChatModels,
    settings: Settings,
    request: str,
    catalogue: Catalogue,
    found: IntentFound | None = None,
) -> tuple[Plan, int]:
    """The planner's call for `request` as the `plan` node makes it after the front door
    found `found` (its actions narrow the catalogue per action, go into the prompt and
    set the fewest steps), and the most steps it was allowed; a cut-off answer is asked
    for again with fewer steps (never fewer than the actions)."""
    parts = action_parts(found)
    shown = narrow(catalogue, request, settings.planner_max_tools, parts=parts)
    most = max_steps(settings.max_todos)
    budgets = [b for b in STEP_BUDGETS if b <= most] or [1]
    budgets = list(dict.fromkeys(max(b, min(len(parts), most)) for b in budgets))
    for budget in budgets:
        try:
            plan = await draft_plan(
                models, request, shown, budget, found, settings.planner_action_tools
            )
            return plan, budget
        except LLMTruncatedError:
            if budget == budgets[-1]:
                raise
    raise AssertionError("unreachable")


# -- the run -------------------------------------------------------------------------------


def settings_for(base_url: str, model: str, timeout: float | None) -> tuple[Settings, Settings]:
    """Ours as the planner is configured but for the temperature, the baseline with
    TaskBench's token limit; both sample as TaskBench's inference.py (`sampled`)."""
    common: dict[str, Any] = {
        "llm_base_url": base_url,
        "llm_model": model,
        "llm_max_retries": 0,
        "llm_temperature": SAMPLING_TEMPERATURE,
    }
    if timeout:
        common["llm_timeout_s"] = timeout
    ours = Settings.model_validate(common)
    theirs = Settings.model_validate({**common, "planner_max_tokens": BASELINE_MAX_TOKENS})
    return ours, theirs


def sampled(settings: Settings) -> ChatModels:
    """The planner model of `settings` with TaskBench's sampling: the same for both sides,
    so that the prompts (and our schema) are what differs. A small model greedy at
    temperature 0 repeats itself until the token limit; theirs has a presence penalty."""
    model = build_chat_model(settings, "planner").model_copy(update=SAMPLING)
    return ChatModels(settings, {"planner": model})


async def answer_ours(
    domain: Domain, request: Request, settings: Settings, models: ChatModels
) -> dict[str, Any]:
    """Our planner's answer to one request, as a results line."""
    found = front_door(request.text)
    parts = action_parts(found)
    try:
        plan, budget = await plan_ours(models, settings, request.text, domain.catalogue, found)
    except LLMError as exc:
        return {"graph": None, "error": exc.code, "detail": str(exc)[:300], "parts": parts}
    graph = plan_graph(plan, domain.catalogue, domain.typed)
    problems = problems_of(plan, domain.catalogue, [EXECUTOR], settings.max_todos)
    problems += coverage_problems(plan, {"intent": found})
    return {
        "graph": graph,
        "error": None,
        "checked": not problems,
        "problems": problems[:5],
        "max_steps": budget,
        "parts": parts,
    }


async def answer_baseline(domain: Domain, request: Request, models: ChatModels) -> dict[str, Any]:
    """The answer to TaskBench's prompt for one request, as a results line."""
    try:
        raw = await ask_baseline(models, baseline_prompt(domain.nodes, request.text, domain.typed))
    except LLMError as exc:
        return {"graph": None, "error": exc.code, "raw": None}
    parsed = parse_baseline(raw)
    error = None if parsed is not None else "not_parsed"
    return {"graph": parsed, "error": error, "raw": raw[:RAW_KEPT]}


def chosen(domain: Domain, types: Sequence[str] | None, limit: int | None) -> list[Request]:
    picked = [r for r in domain.requests if not types or r.type in types]
    return picked[:limit] if limit is not None else picked


def read_results(path: Path) -> list[dict[str, Any]]:
    """The lines of an earlier run (a line cut off by a stopped run is left out)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "id" in row and row.get("side") in SIDES and "graph" in row:
            rows.append(row)
    return rows


async def run(
    domain: Domain,
    requests: Sequence[Request],
    settings: Settings,
    ours: ChatModels,
    theirs: ChatModels,
    results: Path | None = None,
    resume: bool = False,
    sides: Sequence[str] = SIDES,
) -> list[dict[str, Any]]:
    """A line per request and side (of `sides`): every request planned by ours, then every
    one asked with TaskBench's prompt (its long tool list then stays in the server's prompt
    cache). With `resume`, the lines already in `results` are kept and not asked again."""
    done = await asyncio.to_thread(_start_results, results, resume)
    rows = []
    for side in [s for s in SIDES if s in sides]:
        for request in requests:
            key = (request.id, side)
            if key in done:
                rows.append(done[key])
                continue
            started = time.monotonic()
            if side == "ours":
                got = await answer_ours(domain, request, settings, ours)
            else:
                got = await answer_baseline(domain, request, theirs)
            row = {"id": request.id, "type": request.type, "side": side, **got}
            row["seconds"] = round(time.monotonic() - started, 2)
            rows.append(row)
            if results is not None:
                await asyncio.to_thread(_append, results, row)
            print(_progress(row), file=sys.stderr, flush=True)
    return rows


def _start_results(results: Path | None, resume: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """The lines already done (with `resume`); the file holds just those from now on."""
    if results is None:
        return {}
    kept = read_results(results) if resume and results.exists() else []
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return {(r["id"], r["side"]): r for r in kept}


def _append(results: Path, row: Mapping[str, Any]) -> None:
    with results.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _progress(row: Mapping[str, Any]) -> str:
    got = row.get("error") or f"{len(row['graph']['task_nodes'])} nodes"
    return f"{row['id']} {row['type']:6} {row['side']:8} {got:14} {row['seconds']:6.1f} s"


def summary(domain: Domain, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per side: the four F1s over every request, how many answered, the valid share."""
    gold = {r.id: r for r in domain.requests}
    tools = [n["id"] for n in domain.nodes]
    out: dict[str, Any] = {"requests": len({row["id"] for row in rows})}
    for side in [s for s in SIDES if any(row["side"] == s for row in rows)]:
        scores = Scores()
        answered = valid = checked = 0
        mine = [row for row in rows if row["side"] == side]
        for row in mine:
            predicted = domain.score_sample(row["graph"])
            gold_sample = domain.score_sample(gold[row["id"]].gold)
            assert gold_sample is not None  # checked when the domain was loaded
            scores.add(gold_sample, predicted, tools)
            answered += predicted is not None
            valid += graph_valid(row["graph"], domain.catalogue, domain.typed)
            checked += bool(row.get("checked"))
        seconds = [row["seconds"] for row in mine]
        out[side] = {
            **scores.to_json(),
            "answered": answered,
            "valid": valid,
            "valid_share": round(valid / len(mine), 4) if mine else 0.0,
            "median_s": round(statistics.median(seconds), 1) if seconds else None,
        }
        if side == "ours":
            out[side]["checked"] = checked
    return out


def table(result: Mapping[str, Any]) -> str:
    lines = [
        "| planner | answered | valid | node F1 | edge F1 | arg-name F1 | arg-value F1 "
        "| median s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side, label in (("ours", "ours"), ("baseline", "TaskBench's prompt")):
        if side not in result:
            continue
        s = result[side]
        n = s["samples"]
        lines.append(
            f"| {label} | {s['answered']}/{n} | {s['valid']}/{n} | {s['node_f1']:.2f} | "
            f"{s['edge_f1']:.2f} | {s['arg_name_f1']:.2f} | {s['arg_value_f1']:.2f} | "
            f"{s['median_s']} |"
        )
    return "\n".join(lines)


@contextmanager
def model_server(base_url: str | None) -> Iterator[str]:
    """`base_url`, or else a llama-server with SmolLM2 started for the run, its URL."""
    if base_url:
        yield base_url
        return
    from benchmarks.llm_plans import llama_server

    with llama_server(context=CONTEXT, threads=THREADS) as url:
        yield url


def main(argv: list[str] | None = None, models: tuple[ChatModels, ChatModels] | None = None) -> int:
    """The command; `models` (ours, the baseline's) instead of a server, for tests."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tools", type=Path, required=True, help="TaskBench's tool_desc.json")
    parser.add_argument("--data", type=Path, required=True, help="TaskBench's data.json")
    parser.add_argument(
        "--requests", type=Path, help="user_requests.json: the requests' text as inference.py"
    )
    parser.add_argument("--limit", type=int, help="at most this many requests")
    parser.add_argument("--types", help="comma-separated: single, chain, dag (default all)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server (default: llama-server)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--timeout", type=float, help="seconds per model call")
    parser.add_argument("--results", type=Path, help="a JSON line per request, as it is done")
    parser.add_argument("--resume", action="store_true", help="keep --results' lines, do the rest")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help="comma-separated: ours, baseline (default both; the baseline's answers do not "
        "change with our planner)",
    )
    parser.add_argument("--json", action="store_true", help="the summary as JSON")
    args = parser.parse_args(argv)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        parser.error(f"--sides: some of {', '.join(SIDES)}")
    if args.resume and args.results is None:
        parser.error("--resume needs --results FILE")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    types = [t.strip() for t in (args.types or "").split(",") if t.strip()] or None
    try:
        domain = load_domain(args.tools, args.data, args.requests)
    except InputError as exc:
        print(f"taskbench: {exc}", file=sys.stderr)
        return 2
    requests = chosen(domain, types, args.limit)
    if not requests:
        print(f"taskbench: no request of type {args.types} in {args.data}", file=sys.stderr)
        return 2
    if models is not None:
        settings = models[0].settings
        rows = asyncio.run(
            run(domain, requests, settings, *models, args.results, args.resume, sides)
        )
    else:
        with model_server(args.base_url) as url:
            ours, theirs = settings_for(url, args.model, args.timeout)
            answering = (sampled(ours), sampled(theirs))
            rows = asyncio.run(
                run(domain, requests, ours, *answering, args.results, args.resume, sides)
            )
    result = summary(domain, rows)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
