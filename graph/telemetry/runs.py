"""What each run is called and tagged: LangSmith (and any other LangChain tracer) sees it.

`run_config()` names a graph run by what it is (`cpa-planner open`, `… answer`,
`… continue`) and puts the conversation's id, its tenant and the kind of run into its
metadata, which every run under it inherits, and into its tags when LangSmith tracing is on
(tags are copied to every run below, a cost for nothing when no tracer reads them);
`graph.llm.ChatModels` names each LLM call `<role> model` the same way.

Which intent the turn has and which route it took are only known once the graph has
decided them, after the run's metadata was fixed. So when LangSmith tracing is on, each run
of a turn goes under a LangSmith run of our own (`langsmith_turn()`: its public `trace`
API) that gets `intent`, `route` and `status` as metadata and tags when the run ends. When
LangSmith tracing is off (`LANGSMITH_TRACING` unset or false) this does nothing, and
nothing is sent anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.telemetry.handler import TURN_KEY

GRAPH_NAME = "cpa-planner"


def _labels(conversation_id: str, tenant: str | None, kind: str) -> dict[str, str]:
    labels = {"conversation_id": conversation_id, TURN_KEY: kind}
    if tenant is not None:
        labels["tenant"] = tenant
    return labels


def _tags(labels: Mapping[str, Any]) -> list[str]:
    return [f"{key.removeprefix('cpa_')}:{value}" for key, value in labels.items() if value]


def run_config(conversation_id: str, tenant: str | None, kind: str) -> RunnableConfig:
    """Run name, metadata and tags of one run of a conversation (`kind`: open, answer,
    continue). Tags only for LangSmith: every run under this one copies them."""
    labels = _labels(conversation_id, tenant, kind)
    config: RunnableConfig = {"run_name": f"{GRAPH_NAME} {kind}", "metadata": labels}
    if tracing_enabled():
        config["tags"] = _tags(labels)
    return config


def tracing_enabled() -> bool:
    """Whether LangSmith tracing is on (its own environment variables)."""
    from langsmith.utils import tracing_is_enabled

    return tracing_is_enabled() is True


class TurnRun:
    """The LangSmith run a graph run goes under; `finish()` labels it with what was decided."""

    def __init__(self, run_tree: Any) -> None:
        self.run_tree = run_tree

    def finish(self, *, intent: str | None, route: str | None, status: str) -> None:
        labels = {"intent": intent or "none", "route": route or "none", "status": status}
        self.run_tree.add_metadata(labels)
        self.run_tree.add_tags(_tags(labels))
        self.run_tree.end(outputs={"status": status})


@contextlib.asynccontextmanager
async def langsmith_turn(
    conversation_id: str, tenant: str | None, kind: str
) -> AsyncIterator[TurnRun | None]:
    """With LangSmith tracing on, a LangSmith run around the graph run; else None."""
    if not tracing_enabled():
        yield None
        return
    from langsmith import trace

    labels = _labels(conversation_id, tenant, kind)
    with trace(
        f"{GRAPH_NAME} turn: {kind}",
        run_type="chain",
        metadata=labels,
        tags=_tags(labels),
        inputs={"conversation_id": conversation_id},
    ) as run_tree:
        yield TurnRun(run_tree)
