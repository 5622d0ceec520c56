"""Four agents side by side on the same tools and requests, every model a scripted server.

    (a) streamed     cpa-planner, the plan read as it streams (`CPA_STREAM_PLANS=true`)
    (b) whole-plan   cpa-planner, nothing starts before the whole plan (`false`)
    (c) react        LangGraph's prebuilt ReAct agent (`create_react_agent`), which may call
                     several tools at once (it is given every ready tool call in one turn)
    (d) plan-execute a plan-then-execute loop as in LangGraph's plan-and-execute tutorial:
                     a planner writes steps as text, a ReAct agent runs each step in turn,
                     a replanner after each step keeps the rest or answers

The requests are TaskBench-shaped (its daily-life APIs: typed tools, plans of 2-6 tool
calls as chains, fan-ins and parallel branches, `CASES`); every tool only reads and takes
a fixed time (`LATENCY_S`), so no plan waits for a person. Every model is
`benchmarks/scripted_llm.py` in its own process: a fixed time to the first token and a
fixed token rate, answering each agent with exactly what it needs (the plan, the tool
calls of the next turn, the final text, which is the same text for every agent). What
differs is only how many calls each agent makes, how long their answers are, and what
waits for what.

Per agent: LLM calls, prompt and completion tokens, time from the request to the first
tool's start, time to the answer; each as a ratio to (a) on the same request in the same
run (medians over requests; spread: the lowest and highest run's median). For (a) also the
first tool's start after the planner call began ÷ the planner call's duration.

    python -m benchmarks.agents [--runs 3] [--ttft 0.5] [--rate 50] [--scale 1.0]
        [--only NAME,...] [--json]

`--scale` multiplies every time (first token, per token, tools) to run quicker; the
ratios keep, except that our own overhead (graph steps, checks) weighs more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

import httpx
import yaml

from benchmarks.scripted_llm import tokens as scripted_tokens

# -- the tools and the requests ---------------------------------------------------------------

#: The tool catalogue (TaskBench daily-life APIs style): arguments and how long each takes.
TOOLS: dict[str, dict[str, Any]] = {
    "search_web": {
        "description": "Search the web and return the top results as text.",
        "arguments": {"query": "string"},
    },
    "get_weather": {
        "description": "Get the weather forecast for a city on a date.",
        "arguments": {"city": "string", "date": "string"},
    },
    "get_news": {
        "description": "Get the latest news articles on a topic.",
        "arguments": {"topic": "string"},
    },
    "get_stock_price": {
        "description": "Get the latest price of a stock by its ticker symbol.",
        "arguments": {"symbol": "string"},
    },
    "find_restaurants": {
        "description": "Find restaurants in a city, optionally by cuisine.",
        "arguments": {"city": "string", "cuisine": "string"},
    },
    "summarize_text": {
        "description": "Summarize a text in a few sentences.",
        "arguments": {"text": "string"},
    },
    "translate_text": {
        "description": "Translate a text into another language.",
        "arguments": {"text": "string", "target_language": "string"},
    },
    "convert_currency": {
        "description": "Convert an amount of money from one currency to another.",
        "arguments": {"amount": "string", "from_currency": "string", "to_currency": "string"},
    },
}
#: Seconds each tool takes (web APIs, a summariser model).
LATENCY_S: dict[str, float] = {
    "search_web": 1.2,
    "get_weather": 0.8,
    "get_news": 1.0,
    "get_stock_price": 0.6,
    "find_restaurants": 1.0,
    "summarize_text": 1.5,
    "translate_text": 0.9,
    "convert_currency": 0.5,
}


@dataclass(frozen=True)
class Node:
    """One tool call of a case; `{"$step": n}` in an argument is step n's output."""

    tool: str
    title: str
    args: dict[str, Any]
    after: tuple[int, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    shape: str
    request: str
    nodes: tuple[Node, ...]


def _ref(n: int) -> dict[str, int]:
    return {"$step": n}


CASES: tuple[Case, ...] = (
    Case(
        "weather+news",
        "2 parallel",
        "What is the weather in Paris tomorrow, and what is the latest news on the Tour?",
        (
            Node("get_weather", "Paris weather", {"city": "Paris", "date": "tomorrow"}),
            Node("get_news", "Tour news", {"topic": "Tour de France"}),
        ),
    ),
    Case(
        "news-summary",
        "2 chain",
        "Summarize the latest news on solar power",
        (
            Node("get_news", "Solar news", {"topic": "solar power"}),
            Node("summarize_text", "Summarize them", {"text": _ref(1)}, (1,)),
        ),
    ),
    Case(
        "search-summary-translate",
        "3 chain",
        "Look up the history of the Lisbon tram, summarize it and put it into German",
        (
            Node("search_web", "Search the tram", {"query": "history of the Lisbon tram"}),
            Node("summarize_text", "Summarize it", {"text": _ref(1)}, (1,)),
            Node(
                "translate_text",
                "Into German",
                {"text": _ref(2), "target_language": "German"},
                (2,),
            ),
        ),
    ),
    Case(
        "trip-brief",
        "4 fan-in",
        "Brief me on Lisbon for tomorrow: weather, a fish restaurant, what to see, summarized",
        (
            Node("get_weather", "Lisbon weather", {"city": "Lisbon", "date": "tomorrow"}),
            Node("find_restaurants", "Fish places", {"city": "Lisbon", "cuisine": "fish"}),
            Node("search_web", "What to see", {"query": "Lisbon sights"}),
            Node("summarize_text", "Summarize the brief", {"text": _ref(3)}, (1, 2, 3)),
        ),
    ),
    Case(
        "stocks",
        "5: 2 chains + join",
        "Get the Apple and SAP share prices in euros and summarize the news on both",
        (
            Node("get_stock_price", "Apple price", {"symbol": "AAPL"}),
            Node(
                "convert_currency",
                "Apple in euros",
                {"amount": _ref(1), "from_currency": "USD", "to_currency": "EUR"},
                (1,),
            ),
            Node("get_stock_price", "SAP price", {"symbol": "SAP"}),
            Node("get_news", "News on both", {"topic": "Apple and SAP shares"}),
            Node("summarize_text", "Summarize the news", {"text": _ref(4)}, (2, 3, 4)),
        ),
    ),
    Case(
        "two-briefs",
        "6: 2 chains of 3",
        "Find what is new on fusion power and on battery recycling, each summarized in French",
        (
            Node("search_web", "Fusion news", {"query": "fusion power news"}),
            Node("summarize_text", "Summarize fusion", {"text": _ref(1)}, (1,)),
            Node(
                "translate_text",
                "Fusion in French",
                {"text": _ref(2), "target_language": "French"},
                (2,),
            ),
            Node("get_news", "Battery news", {"topic": "battery recycling"}),
            Node("summarize_text", "Summarize batteries", {"text": _ref(4)}, (4,)),
            Node(
                "translate_text",
                "Batteries in French",
                {"text": _ref(5), "target_language": "French"},
                (5,),
            ),
        ),
    ),
)

#: The final answer every agent writes (about 60 tokens).
ANSWER = (
    "Here is what I found. The results of each step are above: the figures and texts you "
    "asked for, summarized where you asked for a summary and translated where you asked for "
    "a translation. Tell me if you want any part in more detail."
)


def _levels(case: Case) -> list[list[int]]:
    """The case's steps (1-based) by level: each level needs only earlier ones."""
    level: dict[int, int] = {}
    for n, node in enumerate(case.nodes, 1):
        level[n] = 1 + max((level[d] for d in node.after), default=-1)
    return [[n for n in level if level[n] == k] for k in range(max(level.values()) + 1)]


def _text_args(node: Node) -> dict[str, Any]:
    """The arguments as a model writes them once it has the earlier outputs (as text)."""
    return {
        k: (f"(the output of step {v['$step']})" if isinstance(v, dict) else v)
        for k, v in node.args.items()
    }


def _step_text(n: int, node: Node) -> str:
    return f"Step {n}: {node.title}: call {node.tool} with {json.dumps(_text_args(node))}"


def written_plan(case: Case) -> dict[str, Any]:
    """The plan the planner model writes for `case` (`graph.plan_steps.PlanDraft`'s keys)."""
    return {
        "goal": case.request[:150],
        "steps": [
            {
                "tool": node.tool,
                "title": node.title,
                "description": f"{node.title} with {node.tool}",
                "arguments": node.args,
                "after": list(node.after),
                "requires_approval": False,
            }
            for node in case.nodes
        ],
    }


def bounds(case: Case, ttft: float, rate: float, scale: float) -> tuple[float, float]:
    """(streamed, whole-plan): the least time to the answer either can take, with no time
    spent on anything but the models and the tools: the planner's call, the tools (each
    step starting once it is written, resp. once the plan is, and its dependencies have
    ended) and the answer's call. The scripted server sends token n at ttft + n / rate."""
    plan = written_plan(case)
    head = f'{{"goal": {json.dumps(plan["goal"], ensure_ascii=False)}, "steps": ['
    bodies = [json.dumps(step, ensure_ascii=False) for step in plan["steps"]]
    text = head + ", ".join(bodies) + "]}"
    assert text == json.dumps(plan, ensure_ascii=False)

    def sent(chars: int) -> float:  # when the token holding character `chars - 1` is out
        return ttft + scripted_tokens(text[:chars]) / rate

    starts, offset = [], len(head)
    for body in bodies:
        starts.append(offset)
        offset += len(body) + 2
    planner = sent(len(text))
    written = [sent(start + 1) for start in starts[1:]] + [planner]
    answer = ttft + scripted_tokens(ANSWER) / rate

    def finish(ready: list[float]) -> float:
        ends: list[float] = []
        for n, node in enumerate(case.nodes):
            begin = max([ready[n], *(ends[d - 1] for d in node.after)])
            ends.append(begin + LATENCY_S[node.tool] * scale)
        return max(ends)

    return finish(written) + answer, finish([planner] * len(case.nodes)) + answer


def scripts(case: Case, key: str) -> dict[str, list[dict[str, Any]]]:
    """What the scripted server answers each agent's models in `case` (model `key:role`)."""
    plan = written_plan(case)
    react_rounds: list[dict[str, Any]] = [
        {
            "tool_calls": [
                {"name": case.nodes[n - 1].tool, "args": _text_args(case.nodes[n - 1])}
                for n in level
            ]
        }
        for level in _levels(case)
    ]
    order = [n for level in _levels(case) for n in level]
    texts = [_step_text(n, case.nodes[n - 1]) for n in order]
    replans = [
        {"when": f"Done steps: {k}.", "rounds": [{"json": {"action": {"steps": texts[k:]}}}]}
        for k in range(1, len(texts))
    ]
    replans.append(
        {
            "when": f"Done steps: {len(texts)}.",
            "rounds": [{"json": {"action": {"response": ANSWER}}}],
        }
    )
    return {
        f"{key}:cpa-planner": [{"when": None, "rounds": [{"json": plan}]}],
        f"{key}:cpa-executor": [{"when": None, "rounds": [{"text": ANSWER}]}],
        f"{key}:react": [{"when": None, "rounds": [*react_rounds, {"text": ANSWER}]}],
        f"{key}:pe-planner": [{"when": None, "rounds": [{"json": {"steps": texts}}]}],
        f"{key}:pe-executor": [
            {
                "when": text,
                "rounds": [
                    {
                        "tool_calls": [
                            {"name": case.nodes[n - 1].tool, "args": _text_args(case.nodes[n - 1])}
                        ]
                    },
                    {"text": f"Done: {case.nodes[n - 1].title}."},
                ],
            }
            for n, text in zip(order, texts, strict=True)
        ],
        f"{key}:pe-replanner": replans,
    }


# -- the tools, timed ---------------------------------------------------------------------------


@dataclass
class ToolClock:
    """Runs the tools (a fixed sleep each) and notes when each call started."""

    scale: float
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)

    async def run(self, tool: str, arguments: dict[str, Any]) -> str:
        self.starts.append(time.monotonic())
        await asyncio.sleep(LATENCY_S[tool] * self.scale)
        self.ends.append(time.monotonic())
        shown = ", ".join(f"{k}={str(v)[:40]}" for k, v in arguments.items())
        return f"{tool}({shown}): the result"


class BenchExecutor:
    """cpa-planner's executor of the benchmark's tools (`executor: bench` in their file)."""

    name = "bench"
    description = "runs the benchmark's tools"
    receiver: str | None = None
    effect = "read"
    runs_tools = True
    free_form = False

    def __init__(self, clock: ToolClock) -> None:
        self.clock = clock

    async def __call__(self, call: Any) -> Any:
        assert call.tool is not None
        return await self.clock.run(call.tool.name, dict(call.tool.arguments))


def tools_file(directory: Path) -> Path:
    path = directory / "agents_tools.yaml"
    tools = [
        {
            "name": name,
            "description": spec["description"],
            "input_schema": {
                "type": "object",
                "properties": {arg: {"type": kind} for arg, kind in spec["arguments"].items()},
                "required": list(spec["arguments"]),
            },
            "returns": "text",
            "effect": "read",
        }
        for name, spec in TOOLS.items()
    ]
    path.write_text(yaml.safe_dump({"executor": "bench", "tools": tools}), encoding="utf-8")
    return path


def langchain_tools(clock: ToolClock) -> list[Any]:
    from langchain_core.tools import StructuredTool

    def make(name: str, spec: dict[str, Any]) -> Any:
        async def run(**kwargs: Any) -> str:
            return await clock.run(name, kwargs)

        schema = {
            "type": "object",
            "properties": {arg: {"type": kind} for arg, kind in spec["arguments"].items()},
            "required": list(spec["arguments"]),
        }
        return StructuredTool(
            name=name, description=spec["description"], args_schema=schema, coroutine=run
        )

    return [make(name, spec) for name, spec in TOOLS.items()]


# -- the agents ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    answer_s: float
    first_tool_s: float | None
    answered: bool
    tools_done_s: float | None = None


def chat(base_url: str, model: str) -> Any:
    import openai
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key="not-needed",
        temperature=0,
        max_retries=0,
        timeout=120,
        http_async_client=openai.DefaultAsyncHttpxClient(),
    )


async def run_cpa(
    case: Case,
    key: str,
    base_url: str,
    streamed: bool,
    clock: ToolClock,
    files: Path,
    model: str | None = None,
) -> Outcome:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver

    from graph.builder import build_graph, make_services
    from graph.config import Settings

    settings = Settings(
        llm_provider="openai_compatible",
        llm_base_url=base_url,
        llm_api_key="not-needed",
        planner_model=model or f"{key}:cpa-planner",
        executor_model=model or f"{key}:cpa-executor",
        intents_path=str(Path(__file__).parent / "workloads" / "agents_intents.yaml"),
        tools_files=(str(tools_file(files)),),
        stream_plans=streamed,
        llm_max_retries=0,
        todo_retries=0,
    )
    services = make_services(settings, extra_executors=[BenchExecutor(clock)])
    # Built before the clock starts, like the other agents' models (a server keeps them).
    services.models.get("planner")
    services.models.get("executor")
    graph = build_graph(services, checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
    start = time.monotonic()
    state = await graph.ainvoke({"request": case.request}, config)
    took = time.monotonic() - start
    first = clock.starts[0] - start if clock.starts else None
    done = max(clock.ends) - start if clock.ends else None
    return Outcome(took, first, state.get("status") == "done", done)


async def run_react(case: Case, key: str, base_url: str, clock: ToolClock) -> Outcome:
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(chat(base_url, f"{key}:react"), langchain_tools(clock))
    start = time.monotonic()
    state = await agent.ainvoke({"messages": [("user", case.request)]})
    took = time.monotonic() - start
    first = clock.starts[0] - start if clock.starts else None
    done = max(clock.ends) - start if clock.ends else None
    return Outcome(took, first, ANSWER in str(state["messages"][-1].content), done)


async def run_plan_execute(case: Case, key: str, base_url: str, clock: ToolClock) -> Outcome:
    """LangGraph's plan-and-execute tutorial, its shape kept: plan, execute a step, replan."""
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import END, START, StateGraph
    from langgraph.prebuilt import create_react_agent
    from pydantic import BaseModel, Field

    class Plan(BaseModel):
        steps: list[str] = Field(description="the steps to follow, in order")

    class Response(BaseModel):
        response: str

    class Act(BaseModel):
        action: Response | Plan

    class PlanExecute(TypedDict):
        input: str
        plan: list[str]
        past_steps: Annotated[list[tuple[str, str]], operator.add]
        response: str

    planner = chat(base_url, f"{key}:pe-planner").with_structured_output(Plan)
    replanner = chat(base_url, f"{key}:pe-replanner").with_structured_output(Act)
    executor = create_react_agent(chat(base_url, f"{key}:pe-executor"), langchain_tools(clock))

    async def plan_step(state: PlanExecute) -> dict[str, Any]:
        plan = await planner.ainvoke(
            [
                ("system", "For the given objective, come up with a simple step by step plan."),
                ("user", state["input"]),
            ]
        )
        return {"plan": plan.steps}

    async def execute_step(state: PlanExecute) -> dict[str, Any]:
        plan_text = "\n".join(f"{i + 1}. {step}" for i, step in enumerate(state["plan"]))
        task = state["plan"][0]
        result = await executor.ainvoke(
            {
                "messages": [
                    (
                        "user",
                        f"For the following plan:\n{plan_text}\n\n"
                        f"You are tasked with executing step 1, {task}",
                    )
                ]
            }
        )
        return {"past_steps": [(task, str(result["messages"][-1].content))]}

    async def replan_step(state: PlanExecute) -> dict[str, Any]:
        done = "\n".join(f"{t}: {r}" for t, r in state["past_steps"])
        act = await replanner.ainvoke(
            [
                ("system", "Update the plan: only the steps still needed, or the final response."),
                (
                    "user",
                    f"Objective: {state['input']}\nDone steps: {len(state['past_steps'])}.\n{done}",
                ),
            ]
        )
        action = act.action
        if isinstance(action, Response):
            return {"response": action.response}
        return {"plan": action.steps}

    builder = StateGraph(PlanExecute)
    builder.add_node("planner", plan_step)
    builder.add_node("agent", execute_step)
    builder.add_node("replan", replan_step)
    builder.add_edge(START, "planner")
    builder.add_edge("planner", "agent")
    builder.add_edge("agent", "replan")
    builder.add_conditional_edges(
        "replan", lambda s: END if s.get("response") else "agent", ["agent", END]
    )
    graph = builder.compile()
    start = time.monotonic()
    limit: RunnableConfig = {"recursion_limit": 50}
    state: Any = await graph.ainvoke(
        PlanExecute(input=case.request, plan=[], past_steps=[], response=""), limit
    )
    took = time.monotonic() - start
    first = clock.starts[0] - start if clock.starts else None
    done = max(clock.ends) - start if clock.ends else None
    return Outcome(took, first, state.get("response") == ANSWER, done)


AGENTS = ("streamed", "whole-plan", "react", "plan-execute")
_ROLE_PREFIX = {
    "streamed": ("cpa-",),
    "whole-plan": ("cpa-",),
    "react": ("react",),
    "plan-execute": ("pe-",),
}


# -- the server and the runs ---------------------------------------------------------------------


@contextmanager
def scripted_server(ttft: float, rate: float) -> Iterator[str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.scripted_llm",
            "--port",
            str(port),
            "--ttft",
            str(ttft),
            "--rate",
            str(rate),
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the scripted LLM server did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Measure:
    agent: str
    case: str
    run: int
    answer_s: float
    first_tool_s: float | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    answered: bool
    tools_done_s: float | None = None
    planner_s: float | None = None
    first_after_planner_start_s: float | None = None


async def measure_one(
    agent: str, case: Case, run: int, base: str, scale: float, files: Path
) -> Measure:
    key = f"r{run}-{case.name}-{agent}"
    async with httpx.AsyncClient(base_url=base) as client:
        await client.post("/scripts", json=scripts(case, key))
        await client.delete("/calls")
        clock = ToolClock(scale)
        if agent in ("streamed", "whole-plan"):
            outcome = await run_cpa(case, key, f"{base}/v1", agent == "streamed", clock, files)
        elif agent == "react":
            outcome = await run_react(case, key, f"{base}/v1", clock)
        else:
            outcome = await run_plan_execute(case, key, f"{base}/v1", clock)
        calls = (await client.get("/calls")).json()["calls"]
    mine = [c for c in calls if str(c["model"]).startswith(key)]
    result = Measure(
        agent,
        case.name,
        run,
        outcome.answer_s,
        outcome.first_tool_s,
        len(mine),
        sum(c["prompt_tokens"] for c in mine),
        sum(c["completion_tokens"] for c in mine),
        outcome.answered,
        outcome.tools_done_s,
    )
    planner = [c for c in mine if c["model"].endswith(":cpa-planner")]
    if planner and clock.starts:
        call = planner[0]
        result.planner_s = call["end"] - call["arrival"]
        result.first_after_planner_start_s = clock.starts[0] - call["arrival"]
    return result


async def run_all(
    runs: int, ttft: float, rate: float, scale: float, cases: tuple[Case, ...] = CASES
) -> list[Measure]:
    measures: list[Measure] = []
    with tempfile.TemporaryDirectory() as tmp, scripted_server(ttft * scale, rate / scale) as base:
        files = Path(tmp)
        for agent in AGENTS:  # imports, first connections, compiled schemas: not measured
            await measure_one(agent, CASES[0], -1, base, scale, files)
        for run in range(runs):
            for n, case in enumerate(cases):
                # Each request's agents in a rotated order: none always goes first.
                order = AGENTS[(run + n) % 4 :] + AGENTS[: (run + n) % 4]
                for agent in order:
                    measures.append(await measure_one(agent, case, run, base, scale, files))
    return measures


# -- the report -----------------------------------------------------------------------------------


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.agents", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttft", type=float, default=0.5, help="seconds to the first token")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every time")
    parser.add_argument("--only", help="comma-separated request names (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    names = set(args.only.split(",")) if args.only else {c.name for c in CASES}
    cases = tuple(c for c in CASES if c.name in names)
    if not cases:
        parser.error(f"no request named {args.only!r}: {', '.join(c.name for c in CASES)}")
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    # The issue asks for LangGraph's prebuilt ReAct agent, which LangGraph 1.x calls deprecated.
    warnings.filterwarnings("ignore", message=".*create_react_agent.*")
    measures = asyncio.run(run_all(args.runs, args.ttft, args.rate, args.scale, cases))
    result = report(measures, args.ttft, args.rate, args.scale)
    command = "python -m benchmarks.agents " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(result, indent=1) if args.json else show(result, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
