"""The graph's services for tests: one factory, with scripted models and test executors.

Every test server's `CPA_SERVER_SERVICES` hook and the in-process drivers make their
services here: the registry and settings they are given, a router model that answers one
intent (a request the rules leave undecided goes to the planner), a planner model that
always writes the same plan, and the executors the test adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel

from graph.builder import make_services
from graph.config import Settings
from graph.executor_registry import Executor
from graph.services import Services
from tests.support.scripted import ConstantChatModel, steps


def scripted_services(
    settings: Settings,
    *,
    plan: Mapping[str, Any] | None = None,
    router_intent: str | None = None,
    executors: Iterable[Executor] = (),
    models: Mapping[str, BaseChatModel] | None = None,
) -> Services:
    """Services of `settings`; `plan`: what the planner model always answers (as numbered
    steps); `router_intent`: what the router model always picks; `models`: other roles'
    (or these roles' own) models; `executors`: added to the built-in ones."""
    chat_models: dict[str, BaseChatModel] = {}
    if router_intent is not None:
        chat_models["router"] = ConstantChatModel(
            answers={"IntentChoice": {"intent": router_intent, "confidence": 0.9}}
        )
    if plan is not None:
        chat_models["planner"] = ConstantChatModel(answers={"PlanDraft": steps(plan)})
    chat_models.update(models or {})
    return make_services(settings, chat_models=chat_models, extra_executors=list(executors))
