"""What the nodes work with besides the state: settings, chat models, executors, intents.

The builder binds one `Services` to the compiled graph (`configurable["cpa_services"]`);
a run config may still override individual settings by name, e.g.
`{"configurable": {"approval_policy": "always"}}` from Studio's assistant settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.config import Settings
from graph.executor_registry import ExecutorRegistry
from graph.intents import IntentRegistry
from graph.llm import ChatModels
from graph.tools.sources import ToolSources

SERVICES_KEY = "cpa_services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    models: ChatModels
    executors: ExecutorRegistry
    intents: IntentRegistry
    # Where each tenant's action catalogue comes from (`graph.tools`).
    tools: ToolSources


_default: Callable[[], Services] | None = None


def set_default_services(factory: Callable[[], Services]) -> None:
    """What a graph compiled without services uses (the builder registers its default).

    A graph served by `langgraph dev` must bind nothing to its config: the server stores
    the config, and only plain values can be stored.
    """
    global _default
    _default = factory


def get_services(config: RunnableConfig) -> Services:
    """The services bound to this graph, with the run config's setting overrides applied."""
    configurable: dict[str, Any] = dict(config.get("configurable") or {})
    services = configurable.get(SERVICES_KEY)
    if services is None and _default is not None:
        services = _default()
    if not isinstance(services, Services):
        raise RuntimeError("graph built without services: compile it with graph.builder")
    settings = services.settings.with_overrides(configurable)
    if settings is services.settings:
        return services
    return replace(services, settings=settings, models=services.models.with_settings(settings))
