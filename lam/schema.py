"""The published JSON Schema (draft 2020-12) of a LAM message on the wire.

Content schemas come from the pydantic content models, so the schema cannot drift from
the validator; the rules between fields (content per performative, when ``conversation_id``
and ``in_reply_to`` are required) are ``if``/``then`` clauses.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from lam.content import CONTENT_MODELS, Content, InformContent, IntentInformContent
from lam.messages import (
    IN_REPLY_TO_REQUIRED,
    LAM_VERSION,
    METADATA_MAX_KEY_CHARS,
    METADATA_MAX_KEYS,
    METADATA_MAX_VALUE_CHARS,
    SUPPORTED_LAM_VERSIONS,
    WIRE_REQUIRED_FIELDS,
)
from lam.performative import Performative
from lam.text import ID_PATTERN

__all__ = ["JSON_SCHEMA_DIALECT", "message_json_schema"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _when(performatives: list[Performative]) -> dict[str, Any]:
    values = [p.value for p in performatives]
    match: dict[str, Any] = {"const": values[0]} if len(values) == 1 else {"enum": values}
    return {"properties": {"performative": match}, "required": ["performative"]}


def message_json_schema() -> dict[str, Any]:
    """The JSON Schema of one LAM message (a fresh dict on every call)."""
    models: list[type[Content]] = [*CONTENT_MODELS.values(), IntentInformContent]
    _, generated = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = generated["$defs"]
    defs["Performative"] = {
        "type": "string",
        "enum": [p.value for p in Performative],
        "description": "What the message does.",
    }
    message_id = {"type": "string", "pattern": ID_PATTERN}
    optional_id = {"type": ["string", "null"], "pattern": ID_PATTERN}
    date_time = {"type": "string", "format": "date-time"}

    rules: list[dict[str, Any]] = []
    for performative, model in CONTENT_MODELS.items():
        content: dict[str, Any] = {"$ref": f"#/$defs/{model.__name__}"}
        if model is InformContent:
            # topic "intent" has its own required keys.
            content = {
                "allOf": [
                    content,
                    {
                        "if": {"properties": {"topic": {"const": "intent"}}, "required": ["topic"]},
                        "then": {"$ref": f"#/$defs/{IntentInformContent.__name__}"},
                    },
                ]
            }
        rules.append({"if": _when([performative]), "then": {"properties": {"content": content}}})
    rules.append(
        {
            "if": _when([p for p in Performative if p is not Performative.REQUEST]),
            "then": {
                "required": ["conversation_id"],
                "properties": {"conversation_id": {"type": "string"}},
            },
        }
    )
    rules.append(
        {
            "if": _when([p for p in Performative if p in IN_REPLY_TO_REQUIRED]),
            "then": {
                "required": ["in_reply_to"],
                "properties": {"in_reply_to": {"type": "string"}},
            },
        }
    )

    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:cpa-planner:lam:{LAM_VERSION}:message",
        "title": "LAMMessage",
        "description": "One LAM protocol message (SPEC §2). `id` and `timestamp` are filled in "
        "when absent; `content` depends on `performative`.",
        "type": "object",
        "additionalProperties": False,
        "required": list(WIRE_REQUIRED_FIELDS),
        "properties": {
            "lam_version": {"type": "string", "enum": list(SUPPORTED_LAM_VERSIONS)},
            "id": message_id,
            "performative": {"$ref": "#/$defs/Performative"},
            "sender": {"type": "string", "minLength": 1},
            "receiver": {"type": "string", "minLength": 1},
            "conversation_id": optional_id,
            "in_reply_to": optional_id,
            "timestamp": date_time,
            "reply_by": {"type": ["string", "null"], "format": "date-time"},
            "content": {"type": "object"},
            "metadata": {
                "type": "object",
                "maxProperties": METADATA_MAX_KEYS,
                "propertyNames": {"maxLength": METADATA_MAX_KEY_CHARS},
                "additionalProperties": {"type": "string", "maxLength": METADATA_MAX_VALUE_CHARS},
            },
        },
        "allOf": rules,
        "$defs": defs,
    }
