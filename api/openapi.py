"""The OpenAPI document: FastAPI's, plus the LAM message schema (its `$defs` as components)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from lam import message_json_schema


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the LAM message schema (its `$defs` as components)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    schema = message_json_schema()
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    components = document.setdefault("components", {}).setdefault("schemas", {})

    def relink(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (
                    v.replace("#/$defs/", "#/components/schemas/LAM_")
                    if k == "$ref" and isinstance(v, str)
                    else relink(v)
                )
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [relink(v) for v in node]
        return node

    _errors_as_json(document)
    components["LAM"] = relink(schema)
    for name, definition in defs.items():
        components[f"LAM_{name}"] = relink(definition)
    app.openapi_schema = document
    return document


def _errors_as_json(document: dict[str, Any]) -> None:
    """Error responses as they are: JSON even on the SSE route (FastAPI gives them the
    route's media type), and a 422 in our error body, not FastAPI's default one."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if str(status)[0] in "45" and "text/event-stream" in content:
                    content["application/json"] = content.pop("text/event-stream")
                schema = content.get("application/json", {}).get("schema", {})
                if schema.get("$ref") == "#/components/schemas/HTTPValidationError":
                    schema["$ref"] = "#/components/schemas/ErrorBody"
                    response["description"] = "invalid input; `fields` names the field paths"
