"""What the nodes work with besides the state: settings, chat models, executors, intents.

The builder binds one `Services` to the compiled graph (`configurable["cpa_services"]`);
a run config may still override individual settings by name, e.g.
`{"configurable": {"approval_policy": "always"}}` from Studio's assistant settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.config import Settings
from graph.executors import ExecutorRegistry
from graph.intents import IntentRegistry
from graph.llm import ChatModels

SERVICES_KEY = "cpa_services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    models: ChatModels
    executors: ExecutorRegistry
    intents: IntentRegistry


def get_services(config: RunnableConfig) -> Services:
    """The services bound to this graph, with the run config's setting overrides applied."""
    configurable: dict[str, Any] = dict(config.get("configurable") or {})
    services = configurable.get(SERVICES_KEY)
    if callable(services) and not isinstance(services, Services):
        services = services()  # the builder's lazy default: made from the environment
    if not isinstance(services, Services):
        raise RuntimeError("graph built without services: compile it with graph.builder")
    settings = services.settings.with_overrides(configurable)
    if settings is services.settings:
        return services
    return replace(services, settings=settings, models=services.models.with_settings(settings))
