"""The four agents, each run once on a request against the scripted server: cpa-planner
streamed and whole-plan, LangGraph's prebuilt ReAct agent, and the plan-and-execute tutorial.
"""

from __future__ import annotations

import operator
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from benchmarks.agents.cases import ANSWER, Case
from benchmarks.agents.tools import BenchExecutor, Outcome, ToolClock, langchain_tools, tools_file

WORKLOADS = Path(__file__).resolve().parents[1] / "workloads"


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
        intents_path=str(WORKLOADS / "agents_intents.yaml"),
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
    return clock.outcome(start, answered=state.get("status") == "done")


async def run_react(case: Case, key: str, base_url: str, clock: ToolClock) -> Outcome:
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(chat(base_url, f"{key}:react"), langchain_tools(clock))
    start = time.monotonic()
    state = await agent.ainvoke({"messages": [("user", case.request)]})
    return clock.outcome(start, answered=ANSWER in str(state["messages"][-1].content))


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
    return clock.outcome(start, answered=state.get("response") == ANSWER)


AGENTS = ("streamed", "whole-plan", "react", "plan-execute")
