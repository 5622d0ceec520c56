"""What a tenant sees of a conversation: its body, its inbox, where its event stream starts.

The body is the conversation's view (`graph.conversations`) with what only the server knows
about its runs: `running` while the server's record says so (work queued or under way on any
replica), a run's error as its result, and, once a run stopped, the body as it was recorded
then (`api.running`), which readers get without rebuilding it from the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, cast

from api.events import Feeds
from graph.conversations import ConversationNotFoundError, Conversations, thread_id
from graph.storage.event_log import EventLog
from graph.storage.records import ConversationRecords
from graph.storage.server_keys import RedisKeys


@dataclass(eq=False)  # a service, not a value: compared by identity
class Views:
    """The conversations of one graph as the API shows them, per tenant."""

    conversations: Conversations
    redis: Any
    keys: RedisKeys
    records: ConversationRecords
    events: EventLog
    feeds: Feeds

    async def view(self, tenant: str, cid: str, *, settled: bool = False) -> dict[str, Any]:
        """The conversation body of docs/http.md, with what only the server knows about runs.

        The status is `running` while the record says so (work queued or under way on any
        replica), unless `settled` (where the run stopped, for `api.running`'s `finish`).
        """
        thread = thread_id(cid, tenant)
        status, raw_error, stopped_at = await self.redis.hmget(
            self.keys.conversation(thread), ["status", "error", "view"]
        )
        if not settled and stopped_at is not None and status != b"running":
            return cast(dict[str, Any], json.loads(stopped_at))  # as `finish` recorded it
        try:
            body = (await self.conversations.view(cid, owner=tenant)).to_dict()
        except ConversationNotFoundError:
            record = await self.records.record(thread)
            if "request" not in record:
                raise
            # Accepted, but the run has not written its first checkpoint (or never will).
            body = {
                "conversation_id": cid,
                "status": "running",
                "intent": None,
                "plan": None,
                "result": None,
                "messages": [json.loads(record["request"])],
            }
            if record.get("status") == "failed":
                body["status"] = "failed"
        if not settled and status == b"running":
            body["status"] = "running"
        elif body["status"] in ("running", "failed") and raw_error is not None:
            # A run that raised: its error is the result (a graph's own failure has none).
            body["status"] = "failed"
            body["result"] = {"error": json.loads(raw_error)}
        return body

    async def inbox(self, tenant: str, cid: str, receiver: str | None) -> list[dict[str, Any]]:
        """The `assign`s and `propose`s still waiting for an answer (from `receiver`)."""
        # Read the answered ids first: an answer applied while the view is read must
        # still hide the message it answered, which that (older) view may list.
        answered = await self.records.answered(thread_id(cid, tenant))
        waiting = await self.conversations.inbox(cid, receiver, owner=tenant)
        return [m for m in waiting if m["id"] not in answered]

    async def wait_idle(self, thread: str, seconds: float) -> None:
        """Until the conversation stops running (on whichever replica), or `seconds`."""
        await self.feeds.until_settled(thread, seconds)

    async def sync_events(self, tenant: str, cid: str) -> None:
        """Append the view's messages not yet in the event log."""
        with contextlib.suppress(ConversationNotFoundError):
            view = await self.view(tenant, cid)
            await self.events.append(thread_id(cid, tenant), view["messages"])

    async def start_position(self, tenant: str, cid: str, last_event_id: str | None) -> int:
        """Where a stream starts: right after `last_event_id`, or at the first message."""
        if not last_event_id:
            return 0
        thread = thread_id(cid, tenant)
        index = await self.events.index_of(thread, last_event_id)
        if index is None:
            # Not yet in the log (or never was): make sure the log is current, look again.
            await self.sync_events(tenant, cid)
            index = await self.events.index_of(thread, last_event_id)
        return index + 1 if index is not None else 0
