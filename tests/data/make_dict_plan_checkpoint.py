"""Writes dict_plan_checkpoint.json: a conversation stopped at its approval, as commit 1e3e47c
stored it (the state's plan a dict, before `graph.plan_channel`). Run against that commit:

    git archive 1e3e47c | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old .venv/bin/python tests/data/make_dict_plan_checkpoint.py

Every checkpoint of the thread, oldest first, with its pending writes, each serialised by
LangGraph's serializer (base64 of `dumps_typed`); `tests/test_plan_state.py` puts them into
a fresh saver through the public saver API and resumes the conversation.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graph.builder import build_graph, make_services
from graph.config import Settings
from tests.support.scripted import UncallableChatModel

HERE = Path(__file__).resolve().parent
THREAD = "dict-plan"
REQUEST = "Please run the steps for the quarterly report"


async def main() -> None:
    saver = InMemorySaver()
    models = {role: UncallableChatModel() for role in ("router", "planner", "executor")}
    settings = Settings(intents_path=str(HERE / "plan_state_intents.yaml"), todo_retries=0)
    graph = build_graph(make_services(settings, chat_models=models), checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": THREAD}}
    await graph.ainvoke({"request": REQUEST}, config)
    snapshot = await graph.aget_state(config)
    assert isinstance(snapshot.values["plan"], dict), "run this against commit 1e3e47c"
    assert [i.value["performative"] for i in snapshot.interrupts] == ["propose"]
    stored = []
    for saved in reversed([t async for t in saver.alist(config)]):
        record = {
            "config": saved.config,
            "parent_config": saved.parent_config,
            "checkpoint": saved.checkpoint,
            "metadata": saved.metadata,
            "pending_writes": saved.pending_writes,
        }
        kind, data = saver.serde.dumps_typed(record)
        stored.append({"type": kind, "data": base64.b64encode(data).decode()})
    (HERE / "dict_plan_checkpoint.json").write_text(json.dumps(stored, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
