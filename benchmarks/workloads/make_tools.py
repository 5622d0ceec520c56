"""Writes tools.json and tool_requests.json: a 200-tool catalogue and requests labelled with
the tools they need, for measuring how well a large catalogue is narrowed to a request
(`benchmarks/tool_narrowing.py`, `tests/test_tools.py`).

    python -m benchmarks.workloads.make_tools

Twenty desktop apps, ten tools each, described the way an agent or an MCP server would
describe them: a name, a sentence, typed arguments, what it returns, its effect. Several
apps have tools with the same verbs (find, delete, send, share...), so a request is matched
by what it is about, not by a verb alone. The requests are written as people write them,
in English and German, not in the tools' words; each names the tools a plan for it needs.

The apps and the requests are data, kept in `desktop_apps.yaml` beside this module; here
they are only expanded into the catalogue file's shape (JSON Schema for the arguments) and
checked: 200 distinct tools, and every request names tools of the catalogue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "desktop_apps.yaml"


def catalogue(apps: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The catalogue file of `apps` (app -> tool -> its entry in `desktop_apps.yaml`)."""
    tools = []
    for app, entries in apps.items():
        for name, entry in entries.items():
            properties = {}
            for argument, (kind, text) in entry.get("arguments", {}).items():
                schema: dict[str, Any] = {"type": kind, "description": text}
                if kind == "array":
                    schema["items"] = {"type": "string"}
                properties[argument] = schema
            tools.append(
                {
                    "name": f"{app}.{name}",
                    "description": entry["description"],
                    "input_schema": {
                        "type": "object",
                        "properties": properties,
                        "required": list(properties)[:1],
                    },
                    "returns": entry["returns"],
                    "effect": entry["effect"],
                }
            )
    return {"executor": "desktop", "tools": tools}


def main() -> None:
    source = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    data = catalogue(source["apps"])
    names = {t["name"] for t in data["tools"]}
    assert len(names) == len(data["tools"]) == 200, len(data["tools"])
    requests = [
        {"text": request["text"], "language": language, "tools": request["tools"]}
        for language, written in source["requests"].items()
        for request in written
    ]
    for request in requests:
        assert set(request["tools"]) <= names, set(request["tools"]) - names
    (HERE / "tools.json").write_text(
        json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (HERE / "tool_requests.json").write_text(
        json.dumps(requests, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
