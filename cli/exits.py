"""Exit statuses of `cpa-planner`, and the error that carries one up to `main`."""

from __future__ import annotations

OK = 0
FAILED = 1  # the conversation ended failed (a ToDo failed, no LLM for the request, ...)
USAGE = 2  # bad command line (argparse's own status)
CONFIG = 3  # a setting, the intent registry, Redis or the server cannot be used
NOT_FOUND = 4  # no such conversation
WAITING = 5  # the conversation waits for an answer nobody could give here (no terminal)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), the conversation is saved and resumable


class CLIError(Exception):
    """An error the command line reports as one line, with its exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status
