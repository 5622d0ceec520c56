"""Wiring: the planning graph, compiled as `graph` for langgraph.json, Studio and the apps.

intake → intent → route ─┬──────────────────────────────────────────────────→ respond
                         ├→ template ──┐
                         └→ plan ──────┴→ check ─┬→ approve ─┬→ execute ─┬───→ respond
                            ↑  └→ respond        │           └→ respond  └→ replan ─┬→ check
                            └────────────────────┘ (repair)                         └→ respond
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.config import Settings
from graph.executors import Executor, ExecutorRegistry
from graph.intents import IntentRegistry
from graph.llm import ChatModels
from graph.services import SERVICES_KEY, Services, set_default_services
from graph.state import PlannerInput, PlannerState
from nodes.approve import after_approve, approve
from nodes.check import after_check, check
from nodes.execute import after_execute, execute
from nodes.executors import (
    DesktopExecutor,
    HttpExecutor,
    HumanExecutor,
    LLMExecutor,
    TemplateExecutor,
)
from nodes.executors.a2a import a2a_executors
from nodes.intake import intake
from nodes.intent import intent
from nodes.plan import after_plan, plan
from nodes.replan import after_replan, replan
from nodes.respond import respond
from nodes.route import after_route, route
from nodes.template import template

BUILTIN_EXECUTORS: tuple[type[Executor], ...] = (
    LLMExecutor,
    DesktopExecutor,
    HumanExecutor,
    HttpExecutor,
    TemplateExecutor,
)


def default_executors(settings: Settings, *, entry_points: bool = True) -> ExecutorRegistry:
    registry = ExecutorRegistry(cls() for cls in BUILTIN_EXECUTORS)
    for agent in a2a_executors(settings):  # `a2a:<name>`, one per configured agent
        registry.register(agent)
    if entry_points:
        registry.load_entry_points(settings)
    return registry


def make_services(
    settings: Settings | None = None,
    *,
    chat_models: Mapping[str, BaseChatModel] | None = None,
    executors: ExecutorRegistry | None = None,
    extra_executors: list[Executor] | None = None,
) -> Services:
    """Services from settings (the environment by default), with optional overrides."""
    settings = settings or Settings.from_env()
    registry = executors or default_executors(settings)
    for executor in extra_executors or []:
        registry.register(executor)
    return Services(
        settings=settings,
        models=ChatModels(settings, chat_models),
        executors=registry,
        intents=IntentRegistry.load(settings.intents_path, executors=registry.names()),
    )


def build_graph(
    services: Services | None = None,
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(PlannerState, input_schema=PlannerInput)
    builder.add_node("intake", intake)
    builder.add_node("intent", intent)
    builder.add_node("route", route)
    builder.add_node("template", template)
    builder.add_node("plan", plan)
    builder.add_node("check", check)
    builder.add_node("approve", approve)
    builder.add_node("execute", execute)
    builder.add_node("replan", replan)
    builder.add_node("respond", respond)

    builder.add_edge(START, "intake")
    builder.add_edge("intake", "intent")
    builder.add_edge("intent", "route")
    builder.add_conditional_edges("route", after_route, ["template", "plan", "respond"])
    builder.add_edge("template", "check")
    builder.add_conditional_edges("plan", after_plan, ["check", "respond"])
    builder.add_conditional_edges("check", after_check, ["plan", "approve", "respond"])
    builder.add_conditional_edges("approve", after_approve, ["execute", "respond"])
    builder.add_conditional_edges("execute", after_execute, ["replan", "respond"])
    builder.add_conditional_edges("replan", after_replan, ["check", "respond"])
    builder.add_edge("respond", END)

    compiled = builder.compile(checkpointer=checkpointer, name="cpa-planner")
    if services is None:
        return compiled  # uses default_services(), registered below
    return compiled.with_config(configurable={SERVICES_KEY: services})


@functools.cache
def default_services() -> Services:
    """Services from the environment, made on first use and kept for the process."""
    return make_services()


set_default_services(default_services)

# The graph for langgraph.json (Studio). Compiling reads no settings: the services come
# from the environment when the first run needs them. The dev server brings its own
# checkpointer, or ours through langgraph.json's `checkpointer` key.
graph = build_graph()
