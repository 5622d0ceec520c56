"""Building and driving the planning graph in tests (in-memory checkpoints)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graph.builder import build_graph
from graph.config import Settings
from graph.services import Services
from tests.support.services import scripted_services


def services(
    *,
    models: Mapping[str, BaseChatModel] | None = None,
    executors: list[Any] | None = None,
    **settings: Any,
) -> Services:
    base = {"todo_retries": 0, "todo_retry_backoff_s": 0.0, **settings}
    return scripted_services(Settings(**base), models=models, executors=executors or [])


class Conversation:
    """One thread of the graph, driven step by step."""

    def __init__(self, svc: Services, checkpointer: BaseCheckpointSaver[Any] | None = None) -> None:
        self.checkpointer = checkpointer or InMemorySaver()
        self.graph = build_graph(svc, checkpointer=self.checkpointer)
        self.thread_id = str(uuid.uuid4())
        self.config: RunnableConfig = {"configurable": {"thread_id": self.thread_id}}
        self.custom: list[dict[str, Any]] = []

    async def _run(self, payload: Any) -> dict[str, Any]:
        async for mode, chunk in self.graph.astream(
            payload, self.config, stream_mode=["custom", "values"]
        ):
            if mode == "custom":
                # langgraph types multi-mode stream items loosely (dict | Any), not as the
                # (mode, chunk) pairs they are; our nodes write dicts to the custom stream.
                self.custom.append(cast(dict[str, Any], chunk))
        return await self.values()

    async def start(self, request: str | dict[str, Any]) -> dict[str, Any]:
        payload = {"request": request} if isinstance(request, str) else request
        return await self._run(payload)

    async def resume(self, answers: Any) -> dict[str, Any]:
        return await self._run(Command(resume=answers))

    async def approve_plan(self) -> dict[str, Any]:
        """Agree to the proposed plan as the person it was proposed to, and run on.

        A plan with a step that changes something (a desktop step, unless a template says
        otherwise) asks first (issue 10).
        """
        (question,) = [
            i for i in await self.interrupts() if i.value.get("performative") == "propose"
        ]
        return await self.resume({question.id: "agree"})

    async def carry_on(self) -> dict[str, Any]:
        """Continue from the last checkpoint (after a crash), with no new input."""
        return await self._run(None)

    async def values(self) -> dict[str, Any]:
        return dict((await self.graph.aget_state(self.config)).values)

    async def interrupts(self) -> list[Any]:
        return list((await self.graph.aget_state(self.config)).interrupts)


def performatives(state: Mapping[str, Any]) -> list[str]:
    return [m["performative"] for m in state.get("lam", [])]
