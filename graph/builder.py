"""Wiring: the planning graph, compiled as `graph` for langgraph.json, Studio and the apps.

intake → intent → route ─┬──────────────────────────────────────────────────→ respond
                         ├→ template ──┐
                         └→ plan ──────┴→ check ─┬→ approve ─┬→ execute ─┬───→ respond
                          ↺ ↑  └→ respond        │           └→ respond  └→ replan ─┬→ check
                            └────────────────────┘ (repair)                         └→ respond

Every node runs inside `guarded`: an exception no node expected ends the turn with a logged
`failure` (code `internal_error`) and goes on to `respond`, which answers; a conversation
is never left `running` by a bug. Every edge goes to `respond` once the turn has failed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph import lamlog
from graph.config import ConfigError, Settings
from graph.executor_registry import Executor, ExecutorRegistry
from graph.intents import IntentRegistry
from graph.llm import ChatModels, plain, schema_problems
from graph.services import SERVICES_KEY, Services, set_default_services
from graph.state import PlannerInput, PlannerState
from graph.storage.errors import REDIS_DOWN
from graph.tools.files import ToolFile, ToolFileError, load_tool_file
from graph.tools.mcp import McpServer
from graph.tools.sources import ToolSources
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
from nodes.executors.a2a import A2AExecutor, a2a_executors
from nodes.executors.mcp import McpExecutor
from nodes.intake import intake
from nodes.intent import intent
from nodes.plan import after_plan, plan
from nodes.replan import after_replan, replan
from nodes.respond import failed_answer, respond
from nodes.route import after_route, route
from nodes.template import template

logger = logging.getLogger(__name__)


class Node(Protocol):
    """A node of this graph: the state and the run's config in, a state update out."""

    def __call__(
        self, state: PlannerState, config: RunnableConfig
    ) -> Awaitable[dict[str, Any]]: ...


EdgeT = TypeVar("EdgeT", bound=str)
#: The code of the `failure` that ends a turn a node broke off with an unexpected error.
INTERNAL_ERROR = "internal_error"

BUILTIN_EXECUTORS: tuple[type[Executor], ...] = (
    LLMExecutor,
    DesktopExecutor,
    HumanExecutor,
    HttpExecutor,
    TemplateExecutor,
)


def mcp_servers(settings: Settings, files: list[ToolFile]) -> list[McpServer]:
    """The MCP servers of the environment, then those the catalogue files declare."""
    try:
        servers = {n: McpServer.parse(n, spec) for n, spec in settings.mcp_servers.items()}
    except ValueError as exc:
        raise ConfigError(f"CPA_MCP_SERVERS: {exc}") from None
    for tool_file in files:
        for server in tool_file.mcp_servers:
            if server.name in servers:
                raise ConfigError(
                    f"MCP server {server.name!r} is declared twice ({tool_file.path} and "
                    "CPA_MCP_SERVERS or another file)"
                )
            servers[server.name] = server
    return list(servers.values())


def default_executors(
    settings: Settings,
    *,
    entry_points: bool = True,
    servers: list[McpServer] | None = None,
) -> ExecutorRegistry:
    registry = ExecutorRegistry(cls() for cls in BUILTIN_EXECUTORS)
    for agent in a2a_executors(settings):  # `a2a:<name>`, one per configured agent
        registry.register(agent)
    for server in servers or []:  # `mcp:<name>`, one per configured MCP server
        registry.register(McpExecutor(server))
    if entry_points:
        registry.load_entry_points(settings)
    return registry


def load_tool_files(settings: Settings) -> list[ToolFile]:
    """The catalogue files of `CPA_TOOLS_FILES`; a bad one stops start-up, naming it."""
    try:
        return [load_tool_file(path) for path in settings.tools_files]
    except ToolFileError as exc:
        raise ConfigError(f"CPA_TOOLS_FILES: {exc}") from None


def make_services(
    settings: Settings | None = None,
    *,
    chat_models: Mapping[str, BaseChatModel] | None = None,
    executors: ExecutorRegistry | None = None,
    extra_executors: list[Executor] | None = None,
) -> Services:
    """Services from settings (the environment by default), with optional overrides."""
    settings = settings or Settings.from_env()
    files = load_tool_files(settings)
    servers = mcp_servers(settings, files)
    registry = executors or default_executors(settings, servers=servers)
    for executor in extra_executors or []:
        registry.register(executor)
    skills = {
        executor.agent: functools.partial(executor.skills, settings)
        for executor in registry
        if isinstance(executor, A2AExecutor)
    }
    return Services(
        settings=settings,
        models=ChatModels(settings, chat_models),
        executors=registry,
        intents=IntentRegistry.load(settings.intents_path, executors=registry.names()),
        tools=ToolSources(settings, registry, files, servers, a2a_skills=skills),
    )


def _what_broke(exc: Exception) -> str:
    """An unexpected error in words: its kind and first line, no library dump."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return f"{exc.title} is not valid: {schema_problems(exc)}"
    first = plain((str(exc).strip().splitlines() or [""])[0])
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def guarded(name: str, node: Node) -> Node:
    """`node`, with any exception it did not expect turned into the end of the turn.

    Interrupts and other LangGraph signals (`GraphBubbleUp`) and cancellation pass through
    untouched: they are how a run waits or stops, not errors. So does Redis being away
    (`REDIS_DOWN`: a restart, a Cluster's failover) when a step reads it: the run stops
    and its runner waits the outage out and carries it on (`graph.storage.outage`); the
    turn has not failed (a step reading the tool offers failed conversations so, while a
    Cluster promoted a replica).
    """

    @functools.wraps(node)
    async def run(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
        try:
            return await node(state, config)
        except (GraphBubbleUp, ConfigError):
            raise  # a run config the server refuses is the caller's error, not the run's
        except REDIS_DOWN:
            raise  # an outage to wait out, not the turn's failure
        except Exception as exc:
            if name == "intake":
                raise  # bad input, and no request of this turn to answer: the caller hears

            logger.exception("the %s step failed", name)
            message = f"the {name} step failed: {_what_broke(exc)}"
            if name == "respond":
                return failed_answer(state, config, INTERNAL_ERROR, message)
            return lamlog.fail(state, config, INTERNAL_ERROR, message)

    return run


def _or_respond(edge: Callable[[PlannerState], EdgeT]) -> Callable[[PlannerState], Any]:
    """An edge that goes to `respond` once the turn has failed, else where `edge` says."""

    @functools.wraps(edge)
    def route(state: PlannerState) -> Any:
        return "respond" if state.get("status") == "failed" else edge(state)

    return route


def _to(target: str) -> Callable[[PlannerState], str]:
    def edge(state: PlannerState) -> str:
        return target

    edge.__name__ = f"to_{target}"
    return edge


def build_graph(
    services: Services | None = None,
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(PlannerState, input_schema=PlannerInput)
    nodes: dict[str, Node] = {
        "intake": intake,
        "intent": intent,
        "route": route,
        "template": template,
        "plan": plan,
        "check": check,
        "approve": approve,
        "execute": execute,
        "replan": replan,
        "respond": respond,
    }
    for name, node in nodes.items():
        builder.add_node(name, guarded(name, node))

    builder.add_edge(START, "intake")
    builder.add_edge("intake", "intent")  # intake's errors are the caller's (bad input)
    edges: list[tuple[str, Callable[[PlannerState], Any], list[str]]] = [
        ("intent", _to("route"), ["route"]),
        ("route", after_route, ["template", "plan"]),
        ("template", _to("check"), ["check"]),
        ("plan", after_plan, ["plan", "check"]),
        ("check", after_check, ["plan", "approve"]),
        ("approve", after_approve, ["execute"]),
        ("execute", after_execute, ["replan"]),
        ("replan", after_replan, ["check"]),
    ]
    for source, edge, targets in edges:
        builder.add_conditional_edges(source, _or_respond(edge), [*targets, "respond"])
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
