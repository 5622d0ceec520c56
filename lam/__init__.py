"""LAM protocol v1 (docs/protocol.md): messages between the user, the planner, executors and the
desktop agent, and the plan they carry.

Stands alone on purpose: no LangGraph, no LangChain, nothing else of this project, so the
desktop agent's side can use it as is.
"""

from lam.content import (
    AgreeContent,
    AssignContent,
    ConfirmContent,
    Content,
    DiscoverContent,
    DoneContent,
    ErrorInfo,
    FailureContent,
    InformContent,
    IntentInformContent,
    OfferContent,
    ProposeContent,
    RefuseContent,
    RequestContent,
    RouteContent,
)
from lam.errors import LAMValidationError
from lam.factory import MessageFactory
from lam.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    LAM_VERSION,
    SUPPORTED_LAM_VERSIONS,
    LAMMessage,
)
from lam.performative import Performative
from lam.plan import TODO_STATUSES, Plan, ToDo, TodoStatus
from lam.schema import message_json_schema
from lam.tools import STEP_REFERENCE, Tool, ToolCall, changes_world

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "LAM_VERSION",
    "STEP_REFERENCE",
    "SUPPORTED_LAM_VERSIONS",
    "TODO_STATUSES",
    "AgreeContent",
    "AssignContent",
    "ConfirmContent",
    "Content",
    "DiscoverContent",
    "DoneContent",
    "ErrorInfo",
    "FailureContent",
    "InformContent",
    "IntentInformContent",
    "LAMMessage",
    "LAMValidationError",
    "MessageFactory",
    "OfferContent",
    "Performative",
    "Plan",
    "ProposeContent",
    "RefuseContent",
    "RequestContent",
    "RouteContent",
    "ToDo",
    "TodoStatus",
    "Tool",
    "ToolCall",
    "changes_world",
    "message_json_schema",
]
