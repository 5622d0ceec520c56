"""The requests and the tools they call, and what every model answers about them.

The requests are TaskBench-shaped (its daily-life APIs: typed tools, plans of 2-6 tool calls
as chains, fan-ins and parallel branches, `CASES`); every tool only reads and takes a fixed
time (`LATENCY_S`). `scripts` is what the scripted server answers each agent's models (the
plan, the tool calls of each turn, the same final text for all); `bounds` the least time
either cpa-planner mode can take on a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from benchmarks.scripted_llm import tokens as scripted_tokens

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
