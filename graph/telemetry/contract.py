"""What the graph's code tells telemetry, by name: nothing else is recognised by name.

Telemetry reads a turn from its LAM log (`lam.log`): what each step added says what
happened, whichever node added it. Two things are not in the log, and the code that does
them imports their names from here, so a rename changes both sides:

- `TODO_TASK`: the functional-API task that runs one ToDo inside a node (its span, its
  duration and outcome per executor); it is called with the ToDo's id as `todo_id` and
  returns the LAM messages it sent under `"lam"`;
- `NotRunYet`: what such a task raises when it did not run in this pass because a ToDo
  it depends on waits (traced as `blocked`, not as an error).
"""

from __future__ import annotations

__all__ = ["TODO_TASK", "NotRunYet"]

TODO_TASK = "run_todo"


class NotRunYet(Exception):
    """A ToDo that did not run in this pass: one it depends on waits for an answer."""
