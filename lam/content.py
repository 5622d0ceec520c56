"""Content schemas, one per performative (docs/protocol.md).

A message stores its content as a plain JSON dict; these models only validate and
normalise it (fill ToDo defaults, drop unset optional keys), so ``to_dict`` stays JSON and
round-trips exactly. Use :meth:`lam.LAMMessage.parsed_content` for the typed view.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lam.errors import FieldError, NestedFieldErrors, errors_from_pydantic
from lam.jsonvalue import check_json, json_errors
from lam.performative import Performative
from lam.plan import Plan, ToDo
from lam.tools import Tool, ToolCall

__all__ = [
    "CONTENT_MODELS",
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
    "OfferContent",
    "ProposeContent",
    "RefuseContent",
    "RequestContent",
    "RouteContent",
    "content_model_for",
    "validate_content",
]

NonEmptyStr = Annotated[str, Field(min_length=1)]


class Content(BaseModel):
    """Base of the content models: strict types, unknown keys refused unless a model allows them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Optional keys left out when None, so `{}` stays `{}` (docs/protocol.md: agree is `{}`
    # or `{"comment"}`).
    _omit_if_none: ClassVar[tuple[str, ...]] = ()

    def to_content(self) -> dict[str, Any]:
        """The normalised JSON dict stored in the message."""
        data = self.model_dump(mode="json")
        for name in self._omit_if_none:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class RequestContent(Content):
    text: NonEmptyStr
    locale: NonEmptyStr | None = None
    _omit_if_none = ("locale",)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the request is blank: say what you need")
        return value


class InformContent(Content):
    """A fact; ``topic`` says which ("status", "answer", ...). Any further JSON keys allowed."""

    model_config = ConfigDict(extra="allow")
    topic: NonEmptyStr


class IntentInformContent(InformContent):
    """``inform`` with topic "intent": the intent found, how sure, and who decided: the
    rules, the local classifier, or the LLM router."""

    topic: Literal["intent"]
    intent: NonEmptyStr
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    source: Literal["rules", "classifier", "llm"]


class ProposeContent(Content):
    plan: Plan


class AgreeContent(Content):
    comment: str | None = None
    _omit_if_none = ("comment",)


class RefuseContent(Content):
    reason: NonEmptyStr


class ConfirmContent(Content):
    """Free: any JSON object."""

    model_config = ConfigDict(extra="allow")


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: NonEmptyStr
    message: str


class FailureContent(Content):
    todo_id: NonEmptyStr | None = None
    error: ErrorInfo
    _omit_if_none = ("todo_id",)


class DoneContent(Content):
    todo_id: NonEmptyStr
    output: Any  # required key, any JSON (null included)

    @field_validator("output")
    @classmethod
    def _plain_json(cls, value: Any) -> Any:
        return check_json(value)


class RouteContent(Content):
    target: NonEmptyStr
    reason: str


class DiscoverContent(Content):
    capability: NonEmptyStr | None = None
    _omit_if_none = ("capability",)


class OfferContent(Content):
    """What an agent can do: the planner's ``executors`` and ``intents``, or an agent's
    ``actions`` (its tools); extra keys (e.g. ``lam_version``) allowed."""

    model_config = ConfigDict(extra="allow")
    executors: list[str] | None = None
    intents: list[str] | None = None
    actions: list[Tool] | None = None
    _omit_if_none = ("executors", "intents", "actions")

    @model_validator(mode="after")
    def _says_something(self) -> OfferContent:
        if self.actions is None and (self.executors is None or self.intents is None):
            missing = [k for k in ("executors", "intents") if getattr(self, k) is None]
            raise NestedFieldErrors(
                [
                    {
                        "field": name,
                        "message": "required: an offer lists `executors` and `intents` (the "
                        "planner's), or `actions` (an agent's tools)",
                    }
                    for name in missing
                ]
            )
        if self.actions is not None:
            seen: set[str] = set()
            for index, tool in enumerate(self.actions):
                if tool.name in seen:
                    raise NestedFieldErrors(
                        [
                            {
                                "field": f"actions.{index}.name",
                                "message": f"the tool name {tool.name!r} is offered twice",
                            }
                        ]
                    )
                seen.add(tool.name)
        return self


class AssignContent(Content):
    """A ToDo for its executor; ``tool``: the tool to run, its arguments resolved and checked."""

    todo: ToDo
    inputs: dict[str, Any]
    tool: ToolCall | None = None
    _omit_if_none = ("tool",)

    @field_validator("inputs")
    @classmethod
    def _plain_json(cls, value: Any) -> Any:
        return check_json(value)


CONTENT_MODELS: dict[Performative, type[Content]] = {
    Performative.REQUEST: RequestContent,
    Performative.INFORM: InformContent,
    Performative.PROPOSE: ProposeContent,
    Performative.AGREE: AgreeContent,
    Performative.REFUSE: RefuseContent,
    Performative.CONFIRM: ConfirmContent,
    Performative.FAILURE: FailureContent,
    Performative.DONE: DoneContent,
    Performative.ROUTE: RouteContent,
    Performative.DISCOVER: DiscoverContent,
    Performative.OFFER: OfferContent,
    Performative.ASSIGN: AssignContent,
}


def content_model_for(performative: Performative, content: dict[str, Any]) -> type[Content]:
    """The model that validates this content (``inform`` about an intent has a stricter one)."""
    if performative is Performative.INFORM and content.get("topic") == "intent":
        return IntentInformContent
    return CONTENT_MODELS[performative]


def validate_content(
    performative: Performative, content: dict[str, Any]
) -> tuple[dict[str, Any], list[FieldError]]:
    """Normalised content and no errors, or the errors (paths relative to ``content``)."""
    errors = json_errors(content)
    if errors:
        return content, errors
    model = content_model_for(performative, content)
    try:
        parsed = model.model_validate(content)
    except ValidationError as exc:
        return content, errors_from_pydantic(exc)
    return parsed.to_content(), []
