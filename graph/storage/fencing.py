"""Fencing: a write of a runner whose lease is no longer current is refused, whole.

The server runs each conversation under a lease (`graph.storage.leases`) whose generation (the
fencing token) the runner passes with every write: checkpoints and task writes (as
`configurable[FENCE]`), the event log, the conversation's status. Every script that writes
for a runner begins with `FENCE_PRELUDE`: its `KEYS[1]` is the thread's fence key
(`graph.storage.base.fence_key`, where `graph.storage.leases` keeps the current generation) and its
`ARGV[1]` the writer's generation, `''` for a writer without a lease (the CLI, Studio),
which writes unfenced. A stale generation gets an error reply starting `FENCED`, before
anything is written; `raise_if_fenced` turns that reply into `FencedError`, the one
exception a runner that lost its lease sees.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig
from redis.exceptions import ResponseError

__all__ = ["FENCE", "FENCE_PRELUDE", "FencedError", "fence_token", "raise_if_fenced"]

FENCE = "fence_token"
"""The `configurable` key of a fenced run: its lease's generation."""

_REFUSED = "FENCED"
# KEYS[1]: the thread's fence key. ARGV[1]: the writer's generation ('' = unfenced).
FENCE_PRELUDE = f"""
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('{_REFUSED} generation ' .. ARGV[1] .. ' is not the current one')
end
"""


class FencedError(RuntimeError):
    """A write carried a lease generation that is no longer the thread's current one.

    Another process has taken the conversation over since (its runner was paused or cut
    off past its lease): nothing of this write was stored, and the run must stop.
    """

    def __init__(self, thread_id: str, token: str) -> None:
        super().__init__(
            f"thread {thread_id}: lease generation {token} is stale; another runner took over"
        )
        self.thread_id = thread_id
        self.token = token


def raise_if_fenced(exc: BaseException, thread_id: str, token: str) -> None:
    """Raise FencedError if `exc` is a script's refusal by `FENCE_PRELUDE`; else return."""
    if isinstance(exc, ResponseError) and str(exc).startswith(_REFUSED):
        raise FencedError(thread_id, token) from None


def fence_token(config: RunnableConfig) -> str:
    """The generation a run's config carries, `''` for an unfenced run."""
    token = config.get("configurable", {}).get(FENCE)
    return "" if token is None else str(token)
