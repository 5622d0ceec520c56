"""Response models: what the handlers return, as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["running", "waiting", "done", "failed"]
FINAL_STATUSES = frozenset({"done", "failed"})


class ConversationBody(BaseModel):
    conversation_id: str
    status: Status
    intent: str | None
    plan: dict[str, Any] | None = Field(description="the plan; each ToDo carries its status")
    result: Any = None
    messages: list[dict[str, Any]] = Field(description="the LAM log")


class Accepted(BaseModel):
    conversation_id: str
    message_id: str = Field(description="the id of the message that was accepted")
    status: Status = Field(description="the conversation's status when this was answered")
    conversation: ConversationBody | None = Field(
        None, description="with `wait`: the conversation once it stopped running"
    )


class ConversationSummary(BaseModel):
    conversation_id: str
    created: float = Field(description="when it was opened, seconds since the epoch")


class ConversationList(BaseModel):
    conversations: list[ConversationSummary]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    redis: Literal["ok"] = "ok"
