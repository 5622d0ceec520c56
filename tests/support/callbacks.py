"""A LangChain callback handler that keeps a run's chain callbacks, to send them again.

The telemetry benchmark replays one turn's callbacks to measure what a handler costs; the
telemetry tests replay them with the nodes renamed.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

Event = tuple[str, tuple[Any, ...], dict[str, Any]]


class ChainRecorder(BaseCallbackHandler):
    """Keeps the chain callbacks of a run: (method name, args, kwargs) in order."""

    run_inline = True

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        self.events.append(("on_chain_start", args, kwargs))

    def on_chain_end(self, *args: Any, **kwargs: Any) -> None:
        self.events.append(("on_chain_end", args, kwargs))

    def on_chain_error(self, *args: Any, **kwargs: Any) -> None:
        self.events.append(("on_chain_error", args, kwargs))
