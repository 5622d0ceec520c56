"""Catalogue files: tools and MCP servers declared by configuration (`CPA_TOOLS_FILES`).

YAML or JSON (docs/tools.md)::

    executor: desktop            # who runs the tools below unless one says (default desktop)
    tools:
      - name: find_files
        description: Find files by name or content.
        input_schema: {type: object, properties: {query: {type: string}}, required: [query]}
        returns: the paths of the files found
        effect: read             # none, read, or what it changes; left out: change
    mcp_servers:
      time: {command: [python, -m, mcp_server_time]}
      notes: {url: "http://127.0.0.1:8931/mcp"}

TaskBench's `tool_desc.json` loads as it is: `{"nodes": [{"id", "desc", "parameters": [{"name",
"type", "desc"}]}]}` (its daily-life APIs), or `"input-type"`/`"output-type"` lists instead
of `parameters` (its multimedia and Hugging Face domains). Typed inputs become arguments
named by their type, in order: `["image", "text", "text"]` → `image`, `text`, `text_2`.

Every problem is a `ToolFileError` naming the file and the entry; a file loads whole or not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import ValidationError

from graph.tools.mcp import McpServer
from lam import Tool

DEFAULT_EXECUTOR = "desktop"
# TaskBench's parameter types and the JSON Schema types they are.
_TASKBENCH_TYPES = {
    "string": "string",
    "str": "string",
    "text": "string",
    "date": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
}
_TOP_KEYS = {"executor", "tools", "mcp_servers"}


class ToolFileError(ValueError):
    """A catalogue file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class ToolFile:
    """What one catalogue file declares."""

    path: str
    tools: tuple[Tool, ...] = ()
    mcp_servers: tuple[McpServer, ...] = ()
    executor: str = DEFAULT_EXECUTOR
    warnings: tuple[str, ...] = field(default=())

    @property
    def source(self) -> str:
        return f"file:{self.path}"


def check_input_schema(schema: Mapping[str, Any]) -> str | None:
    """What is wrong with a tool's arguments' schema as JSON Schema (None: nothing)."""
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the schema"
        return f"not valid JSON Schema at {where}: {exc.message}"
    return None


def load_tool_file(path: str | Path) -> ToolFile:
    """Read and check one catalogue file."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolFileError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if where.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ToolFileError(
            f"{where}: not valid {'JSON' if where.endswith('.json') else 'YAML'}: {exc}"
        ) from None
    return parse_tool_file(data, where)


def parse_tool_file(data: Any, where: str = "<tools>") -> ToolFile:
    """A catalogue from its decoded content (see the module docstring)."""
    if not isinstance(data, dict):
        raise ToolFileError(f"{where}: expected an object with `tools` (or TaskBench's `nodes`)")
    if "nodes" in data:
        return ToolFile(
            where,
            tuple(_taskbench_tool(n, i, where) for i, n in enumerate(_list(data, "nodes", where))),
        )
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ToolFileError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(_TOP_KEYS))}"
        )
    executor = data.get("executor", DEFAULT_EXECUTOR)
    if not isinstance(executor, str) or not executor:
        raise ToolFileError(f"{where}: executor must be an executor's name")
    tools = [_tool(raw, i, where) for i, raw in enumerate(_list(data, "tools", where))]
    names = [t.name for t in tools]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ToolFileError(f"{where}: tool name(s) given twice: {', '.join(twice)}")
    servers = data.get("mcp_servers") or {}
    if not isinstance(servers, dict):
        raise ToolFileError(
            f"{where}: mcp_servers must map names to {{command: ...}} or {{url: ...}}"
        )
    return ToolFile(
        where,
        tuple(tools),
        tuple(_server(name, spec, where) for name, spec in servers.items()),
        executor,
    )


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise ToolFileError(f"{where}: `{key}` must be a list")
    return value


def _tool(raw: Any, index: int, where: str) -> Tool:
    label = f"{where}: tools[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        label += f" ({raw['name']})"
    if not isinstance(raw, dict):
        raise ToolFileError(f"{label}: expected an object with name, description, input_schema")
    try:
        tool = Tool.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "the entry"
        message = str(first.get("ctx", {}).get("error") or first["msg"])
        raise ToolFileError(f"{label}: {loc}: {message}") from None
    problem = check_input_schema(tool.input_schema)
    if problem:
        raise ToolFileError(f"{label}: input_schema is {problem}")
    return tool


def _server(name: Any, spec: Any, where: str) -> McpServer:
    label = f"{where}: mcp_servers.{name}"
    if not isinstance(name, str) or not name or "." in name:
        raise ToolFileError(f"{label}: a server name is a word without dots")
    if not isinstance(spec, dict) or ("command" in spec) == ("url" in spec):
        raise ToolFileError(f"{label}: give either `command` (a list, or a command line) or `url`")
    env = spec.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ToolFileError(f"{label}: env must map names to strings")
    if "url" in spec:
        if not isinstance(spec["url"], str):
            raise ToolFileError(f"{label}: url must be a string")
        return McpServer(name, url=spec["url"])
    command = spec["command"]
    if isinstance(command, str):
        server = McpServer.parse(name, command)
        return McpServer(name, command=server.command, env=env, cwd=spec.get("cwd"))
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ToolFileError(f"{label}: command must be a non-empty list of strings")
    return McpServer(name, command=tuple(command), env=env, cwd=spec.get("cwd"))


def _taskbench_tool(node: Any, index: int, where: str) -> Tool:
    if not isinstance(node, dict) or not isinstance(node.get("id"), str):
        raise ToolFileError(f"{where}: nodes[{index}]: expected an object with an `id`")
    properties: dict[str, Any] = {}
    if "parameters" in node:
        for param in node["parameters"] or []:
            kind = _TASKBENCH_TYPES.get(str(param.get("type", "string")).lower(), "string")
            schema: dict[str, Any] = {"type": kind}
            text = str(param.get("desc") or param.get("description") or "")
            if str(param.get("type")).lower() == "date":
                text = f"{text} (a date)".strip()
            if text:
                schema["description"] = text
            properties[str(param["name"])] = schema
    else:
        for kind in node.get("input-type") or []:
            name = str(kind)
            n = 2
            while name in properties:
                name = f"{kind}_{n}"
                n += 1
            properties[name] = {
                "type": "string",
                "description": f"the {kind}: a file name, a URL, the text itself, or an earlier "
                "step's output",
            }
    outputs = node.get("output-type") or []
    try:
        return Tool(
            name=node["id"],
            description=str(node.get("desc") or ""),
            input_schema={
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
            returns=f"the {', '.join(map(str, outputs))}" if outputs else "",
        )
    except ValidationError as exc:
        raise ToolFileError(
            f"{where}: nodes[{index}] ({node['id']}): {exc.errors()[0]['msg']}"
        ) from None
