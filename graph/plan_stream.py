"""A plan as the planner model writes it: which of its steps are written in full so far.

The planner's answer streams as JSON text (`graph.llm.ChatModels.structured_stream`),
`{"goal": ..., "steps": [{...}, {...}, ...]}`. While it grows, langchain-core's
`parse_partial_json` reads it with its open strings, lists and objects closed. A step is
complete once the next step has begun (the model has moved on, so nothing more is written
into it) or the answer has ended; the last step is only complete at the end.

`PartialPlan.feed(text)` takes the whole text so far and returns the steps that became
complete with it, each once, in order, as the dicts the model wrote (their checking is the
caller's: `nodes.early_start`). Parsing the whole text again costs a pass over it, so it is
only done when the new text could have begun a step or closed the list (a `{` or a `]`).
A text that does not start with the text seen before (the call was retried) starts over
without returning a step twice.

**The plan as written so far** is what a person watching sees of a plan while it streams
(the state's plan is only set when the `plan` node returns, and with nothing to approve the
whole plan runs inside that node). `nodes.early_start` publishes it as `{WRITTEN: ...}`
(`written_so_far`): on LangGraph's custom stream as it grows (the terminal's live view),
and as the result of a functional-API task (`WRITTEN`) after each step it starts and once
the answer is whole, a pending write of the checkpoint at once, which any process reads
(`graph.conversations.Conversations.view`, the server's `GET /v1/conversations/{id}`, the
console). `live_plan` gives the plan such a record shows, with each step's state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.utils.json import parse_partial_json

from lam import ToDo

#: The key of the plan as written so far, in a custom-stream chunk and in a task's result.
WRITTEN = "plan_written"


@dataclass
class PartialPlan:
    """The steps of one answer, read as it grows."""

    text: str = ""
    goal: str | None = None
    #: The complete steps returned so far, in order.
    steps: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def feed(self, text: str) -> list[dict[str, Any]]:
        """The steps `text` (the whole answer so far) completes, beyond those returned."""
        if not text.startswith(self.text):
            self.text = ""  # a new attempt: its steps are compared by position
        new, self.text = text[len(self.text) :], text
        if self.closed or not any(mark in new for mark in "{]"):
            return []
        return self._complete(closed=False)

    def close(self, text: str | None = None) -> list[dict[str, Any]]:
        """The answer is whole: the steps not returned yet, the last one included."""
        if text is not None:
            self.text = text
        steps = self._complete(closed=True)
        self.closed = True
        return steps

    def _complete(self, *, closed: bool) -> list[dict[str, Any]]:
        try:
            parsed = parse_partial_json(self.text) if self.text.strip() else None
        except ValueError:  # not JSON at all (yet): wait for more
            parsed = None
        if not isinstance(parsed, dict):
            return []
        if isinstance(parsed.get("goal"), str):
            self.goal = parsed["goal"]
        written = parsed.get("steps")
        if not isinstance(written, list):
            return []
        complete = written if closed else written[:-1]
        fresh = [s if isinstance(s, dict) else {} for s in complete[len(self.steps) :]]
        self.steps.extend(fresh)
        return fresh


def written_so_far(goal: str, todos: Iterable[ToDo], started: Iterable[str]) -> dict[str, Any]:
    """The plan as written so far, as published: `{WRITTEN: {goal, todos, started, at}}`.

    `todos` in plan order (a step whose dependency is not among them is left out: `check`
    refuses such a plan anyway); `started`: the ids of those dispatched to run; `at`: when.
    """
    shown: list[dict[str, Any]] = []
    for todo in todos:
        if all(dep in {t["id"] for t in shown} for dep in todo.depends_on):
            shown.append(todo.model_dump(mode="json"))
    ids = {t["id"] for t in shown}
    return {
        WRITTEN: {
            "goal": goal,
            "todos": shown,
            "started": [t for t in started if t in ids],
            "at": time.time(),
        }
    }


def newest_written(values: Iterable[Any]) -> dict[str, Any] | None:
    """The newest published plan among values (tasks' results; other values are skipped)."""
    newest: dict[str, Any] | None = None
    for value in values:
        written = value.get(WRITTEN) if isinstance(value, Mapping) else None
        if isinstance(written, dict) and (newest is None or written["at"] >= newest["at"]):
            newest = written
    return newest


def live_plan(
    written: Mapping[str, Any], outcomes: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], set[str]]:
    """The plan a published record shows (its wire form, every step as written) and the
    ids of its steps running now: started, no outcome yet, and every dependency done.

    (A started step waits for its dependencies before it sends its `assign`.) The steps'
    outcomes are laid over the plan by the caller, as over any plan mid-run.
    """
    plan = {"goal": written["goal"], "todos": [dict(t) for t in written["todos"]]}
    status = {t["id"]: t["status"] for t in plan["todos"]}
    status.update({todo_id: str(o.get("status")) for todo_id, o in outcomes.items()})
    running = {
        t["id"]
        for t in plan["todos"]
        if t["id"] in written["started"]
        and status[t["id"]] == "pending"
        and all(status.get(dep) == "done" for dep in t["depends_on"])
    }
    return plan, running
