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

The parts: `cases` (the requests, the tools' catalogue and latencies, what the scripted
models answer, the bounds), `tools` (the tools, timed), `runners` (the four agents),
`measure` (the server and the runs), `report` (the table), `__main__` (the command).
"""
