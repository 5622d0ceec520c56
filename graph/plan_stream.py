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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.utils.json import parse_partial_json


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
