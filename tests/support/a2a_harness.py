"""The A2A tests' server set-up: scripted planner, two small executors, the default registry.

`a2a_services` is the CPA_SERVER_SERVICES hook. A compound request (the rules abstain)
gets the scripted planner's plan: `t1` finds a slot (`lookup`, declared read-only), `t2`
books it (`book`, no declared effect: it changes something, so the plan is proposed for
approval first), `t3` emails the agenda (`book` again: one ToDo per action).
"""

from __future__ import annotations

from typing import Any

from graph.config import Settings
from graph.executor_registry import ExecutorCall
from graph.services import Services
from tests.support.services import scripted_services

COMPOUND = "Find a free slot with Anna next week, book it and email her the agenda"

PLAN = {
    "goal": "Meet Anna",
    "todos": [
        {"id": "t1", "title": "Find a slot", "executor": "lookup", "inputs": {}},
        {"id": "t2", "title": "Book it", "executor": "book", "depends_on": ["t1"]},
        {"id": "t3", "title": "Email Anna the agenda", "executor": "book", "depends_on": ["t2"]},
    ],
}


class LookupExecutor:
    name = "lookup"
    description = "finds a free slot (test executor)"
    receiver: str | None = None
    effect = "read"

    async def __call__(self, call: ExecutorCall) -> Any:
        return {"slot": "Tuesday 10:00"}


class BookExecutor:
    name = "book"
    description = "books or sends something (test executor)"
    receiver: str | None = None

    async def __call__(self, call: ExecutorCall) -> Any:
        return {"did": call.todo.id, "after": sorted(call.inputs["dependencies"])}


def a2a_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the A2A tests."""
    return scripted_services(
        settings,
        plan=PLAN,
        router_intent="other_task",
        executors=[LookupExecutor(), BookExecutor()],
    )


HELPER_PLAN = {
    "goal": "Ask the helper",
    "todos": [
        {
            "id": "t1",
            "title": "Ask the helper agent",
            "executor": "a2a:helper",
            "inputs": {"question": "capital of Portugal"},
        },
        {"id": "t2", "title": "Look it up too", "executor": "lookup", "depends_on": ["t1"]},
    ],
}


def helper_services(settings: Settings) -> Services:
    """The CPA_SERVER_SERVICES hook of the `a2a` executor tests: the plan asks `helper`."""
    return scripted_services(
        settings,
        plan=HELPER_PLAN,
        router_intent="other_task",
        executors=[LookupExecutor(), BookExecutor()],
    )
