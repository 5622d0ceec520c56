"""The LAM message (SPEC §2): one JSON object per message, validated on the way in.

``from_dict``/``from_json`` are the wire entry points: they enforce the size limit, require
``lam_version``, and turn every kind of bad input into :class:`LAMValidationError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from copy import deepcopy
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self
from uuid import uuid4

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lam.content import Content, content_model_for, validate_content
from lam.errors import FieldError, LAMValidationError, NestedFieldErrors, errors_from_pydantic
from lam.jsonvalue import json_errors
from lam.performative import Performative
from lam.plan import Plan, ToDo
from lam.rfc3339 import format_rfc3339, parse_rfc3339, to_utc
from lam.text import check_id, surrogate_errors

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "IN_REPLY_TO_REQUIRED",
    "LAM_VERSION",
    "METADATA_MAX_KEYS",
    "METADATA_MAX_KEY_CHARS",
    "METADATA_MAX_VALUE_CHARS",
    "SUPPORTED_LAM_VERSIONS",
    "WIRE_REQUIRED_FIELDS",
    "LAMMessage",
]

LAM_VERSION: Literal["1.0"] = "1.0"
SUPPORTED_LAM_VERSIONS: tuple[str, ...] = (LAM_VERSION,)
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024

WIRE_REQUIRED_FIELDS: tuple[str, ...] = (
    "lam_version",
    "performative",
    "sender",
    "receiver",
    "content",
)
"""Keys a message must carry on the wire; ``id`` and ``timestamp`` are filled in when absent."""

# agree/refuse/done always answer a propose or an assign. failure only does when it answers an
# assign, which one message alone cannot tell, so it is optional there.
IN_REPLY_TO_REQUIRED = frozenset({Performative.AGREE, Performative.REFUSE, Performative.DONE})

METADATA_MAX_KEYS = 32
METADATA_MAX_KEY_CHARS = 64
METADATA_MAX_VALUE_CHARS = 1024

NonEmptyStr = Annotated[str, Field(min_length=1)]
MessageId = Annotated[str, AfterValidator(check_id)]
"""A message or conversation id: 1-128 of letters, digits and `._:-` (see `lam.text`)."""


def _new_id() -> str:
    return str(uuid4())


def _now() -> datetime:
    return to_utc(datetime.now(UTC))


def _as_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise ValueError(f"expected an RFC 3339 date-time string, got {type(value).__name__}")


class LAMMessage(BaseModel):
    """One LAM message. Immutable; build with :class:`lam.MessageFactory` or parse with
    :meth:`from_json`/:meth:`from_dict`.

    ``content`` is a plain JSON dict, validated and normalised for the performative.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    lam_version: Literal["1.0"] = LAM_VERSION
    id: MessageId = Field(default_factory=_new_id)
    performative: Performative
    sender: NonEmptyStr
    receiver: NonEmptyStr
    conversation_id: MessageId | None = Field(default=None, validate_default=True)
    in_reply_to: MessageId | None = Field(default=None, validate_default=True)
    timestamp: datetime = Field(default_factory=_now)
    reply_by: datetime | None = None
    content: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    metadata: dict[str, str] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        # The Python constructor refuses bad input with the same error type as the wire.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise LAMValidationError(errors_from_pydantic(exc)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """pydantic's model_validate, raising LAMValidationError (prefer :meth:`from_dict`)."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise LAMValidationError(errors_from_pydantic(exc)) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """pydantic's model_validate_json, raising LAMValidationError (prefer :meth:`from_json`)."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise LAMValidationError(errors_from_pydantic(exc)) from None

    def __hash__(self) -> int:
        # Equal messages share an id; the content dict itself is not hashable.
        return hash((type(self), self.id))

    # --- field rules -------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # Any string, anywhere: one that cannot be encoded could be neither stored nor sent.
        errors = surrogate_errors(data)
        if errors:
            raise NestedFieldErrors(errors)
        return data

    @field_validator("lam_version", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> Any:
        if value not in SUPPORTED_LAM_VERSIONS or not isinstance(value, str):
            supported = ", ".join(SUPPORTED_LAM_VERSIONS)
            raise ValueError(f"unsupported LAM version {value!r}; supported versions: {supported}")
        return value

    @field_validator("performative", mode="before")
    @classmethod
    def _known_performative(cls, value: Any) -> Any:
        if isinstance(value, Performative):
            return value
        if isinstance(value, str):
            try:
                return Performative(value)
            except ValueError:
                pass
        names = ", ".join(p.value for p in Performative)
        raise ValueError(f"unknown performative {value!r}; expected one of: {names}")

    @field_validator("conversation_id")
    @classmethod
    def _conversation_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        performative = info.data.get("performative")
        if value is None and performative is not None and performative is not Performative.REQUEST:
            raise ValueError(
                f"conversation_id is required on {_a(performative)} message "
                "(only a 'request' may open a conversation without one)"
            )
        return value

    @field_validator("in_reply_to")
    @classmethod
    def _reply_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        performative = info.data.get("performative")
        if value is None and performative in IN_REPLY_TO_REQUIRED:
            raise ValueError(
                f"in_reply_to is required on {_a(performative)} message "
                "(it answers a propose or an assign: give that message's id)"
            )
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> datetime:
        return _as_timestamp(value)

    @field_validator("reply_by", mode="before")
    @classmethod
    def _reply_by(cls, value: Any) -> datetime | None:
        return None if value is None else _as_timestamp(value)

    @field_validator("content")
    @classmethod
    def _content_fits(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        performative = info.data.get("performative")
        if performative is None:  # already reported as the performative's error
            return value
        normalised, errors = validate_content(performative, value)
        if errors:
            raise NestedFieldErrors(errors)
        return normalised

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        errors: list[FieldError] = []
        if len(value) > METADATA_MAX_KEYS:
            errors.append(
                {"field": "", "message": f"{len(value)} keys; at most {METADATA_MAX_KEYS} allowed"}
            )
        for key, item in value.items():
            if len(key) > METADATA_MAX_KEY_CHARS:
                errors.append(
                    {
                        "field": key[:40],
                        "message": f"key longer than {METADATA_MAX_KEY_CHARS} characters",
                    }
                )
            if len(item) > METADATA_MAX_VALUE_CHARS:
                errors.append(
                    {
                        "field": key[:40],
                        "message": f"value longer than {METADATA_MAX_VALUE_CHARS} characters",
                    }
                )
        if errors:
            raise NestedFieldErrors(errors)
        return value

    # --- typed views ---------------------------------------------------------------------

    def parsed_content(self) -> Content:
        """The content as its performative's model (e.g. ``AssignContent``)."""
        return content_model_for(self.performative, self.content).model_validate(self.content)

    def todo(self) -> ToDo:
        """The ToDo an ``assign`` carries."""
        self._expect(Performative.ASSIGN, "todo()")
        return ToDo.model_validate(self.content["todo"])

    def plan(self) -> Plan:
        """The plan a ``propose`` carries."""
        self._expect(Performative.PROPOSE, "plan()")
        return Plan.model_validate(self.content["plan"])

    def _expect(self, performative: Performative, what: str) -> None:
        if self.performative is not performative:
            raise ValueError(
                f"{what} needs {_a(performative)} message, this is {_a(self.performative)}"
            )

    # --- wire format ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict with every field; ``from_dict`` turns it back into this."""
        return self._wire_dict(copy=True)

    def to_json(self) -> str:
        """Compact, deterministic JSON (sorted keys): equal messages give equal text."""
        return json.dumps(
            self._wire_dict(copy=False),
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
            allow_nan=False,
        )

    def _wire_dict(self, *, copy: bool) -> dict[str, Any]:
        return {
            "lam_version": self.lam_version,
            "id": self.id,
            "performative": self.performative.value,
            "sender": self.sender,
            "receiver": self.receiver,
            "conversation_id": self.conversation_id,
            "in_reply_to": self.in_reply_to,
            "timestamp": format_rfc3339(self.timestamp),
            "reply_by": None if self.reply_by is None else format_rfc3339(self.reply_by),
            "content": deepcopy(self.content) if copy else self.content,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(
        cls, data: Any, *, max_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES
    ) -> LAMMessage:
        """Validate a decoded JSON object. ``max_bytes`` applies to its compact JSON size."""
        if not isinstance(data, Mapping):
            raise LAMValidationError.single(
                "", f"a LAM message must be a JSON object, got {type(data).__name__}"
            )
        if max_bytes is not None:
            size = _json_size(data)
            if size > max_bytes:
                raise _oversize(size, max_bytes)
        return cls._from_mapping(data)

    @classmethod
    def from_json(
        cls, text: str | bytes | bytearray, *, max_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES
    ) -> LAMMessage:
        """Parse and validate one JSON message. ``max_bytes`` applies to the raw UTF-8 length."""
        if isinstance(text, str):
            size = len(text.encode("utf-8", "surrogatepass"))
        elif isinstance(text, (bytes, bytearray)):
            size = len(text)
        else:
            raise LAMValidationError.single(
                "", f"expected JSON text (str or bytes), got {type(text).__name__}"
            )
        if max_bytes is not None and size > max_bytes:
            raise _oversize(size, max_bytes)
        try:
            decoded = text if isinstance(text, str) else bytes(text).decode("utf-8")
            data = json.loads(
                decoded, object_pairs_hook=_object_without_duplicates, parse_constant=_no_constants
            )
        except UnicodeDecodeError as exc:
            raise LAMValidationError.single(
                "", f"not valid UTF-8: {exc.reason} at byte {exc.start}"
            ) from None
        except json.JSONDecodeError as exc:
            raise LAMValidationError.single(
                "", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except (ValueError, RecursionError) as exc:  # duplicate keys, NaN, huge ints, deep nesting
            message = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
            raise LAMValidationError.single("", f"not valid JSON: {message}") from None
        if not isinstance(data, dict):
            raise LAMValidationError.single(
                "", f"a LAM message must be a JSON object, got {_json_type(data)}"
            )
        return cls._from_mapping(data)

    @classmethod
    def _from_mapping(cls, data: Mapping[Any, Any]) -> LAMMessage:
        errors: list[FieldError] = [
            {"field": name, "message": "required on the wire"}
            for name in WIRE_REQUIRED_FIELDS
            if name not in data
        ]
        missing = {e["field"] for e in errors}
        try:
            message = cls.model_validate(dict(data))
        except LAMValidationError as exc:
            # A missing field's default may fail too (content {} for a request): say it once.
            errors.extend(e for e in exc.errors if e["field"].split(".")[0] not in missing)
        except (TypeError, ValueError, RecursionError, OverflowError) as exc:
            # Belt and braces: the wire API promises one exception type.
            errors.append({"field": "", "message": f"could not validate: {exc}"})
        if errors:
            raise LAMValidationError(errors)
        return message


def _a(performative: Performative) -> str:
    article = "an" if performative.value[0] in "aeiou" else "a"
    return f"{article} {performative.value!r}"


def _oversize(size: int, max_bytes: int) -> LAMValidationError:
    return LAMValidationError.single(
        "", f"message size {size} bytes is over the limit of {max_bytes} bytes"
    )


def _json_size(data: Mapping[Any, Any]) -> int:
    try:
        text = json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:
        # Name the offending paths when we can (e.g. a datetime object instead of a string).
        errors = json_errors(dict(data))
        if errors:
            raise LAMValidationError(errors) from None
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise LAMValidationError.single("", f"not JSON-serialisable: {reason}") from None
    return len(text.encode("utf-8", "surrogatepass"))


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r} in an object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), type(value).__name__
    )
