"""TaskBench's own prompt (its `inference.py`, without demonstrations) and its reading of
the answer: the baseline of `benchmarks.taskbench`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.messages import HumanMessage

from graph.llm import ChatModels

_TYPED_PROMPT = (
    """\n# GOAL #: Based on the above tools, I want you generate task steps and task nodes to """
    """solve the # USER REQUEST #. The format must in a strict JSON format, like: """
    """{"task_steps": [ step description of one or more steps ], "task_nodes": [{"task": """
    """"tool name must be from # TOOL LIST #", "arguments": [ a concise list of arguments """
    """for the tool. Either original text, or user-mentioned filename, or tag '<node-j>' """
    """(start from 0) to refer to the output of the j-th node. ]}]} """
    """\n\n# REQUIREMENTS #: \n1. the generated task steps and task nodes can resolve the """
    """given user request # USER REQUEST # perfectly. Task name must be selected from """
    """# TASK LIST #; \n2. the task steps should strictly aligned with the task nodes, and """
    """the number of task steps should be same with the task nodes; \n3. the dependencies """
    """among task steps should align with the argument dependencies of the task nodes; """
    """\n4. the tool arguments should be align with the input-type field of # TASK LIST #;"""
)
_NAMED_PROMPT = (
    """\n# GOAL #:\nBased on the above tools, I want you generate task steps and task nodes """
    """to solve the # USER REQUEST #. The format must in a strict JSON format, like: """
    """{"task_steps": [ "concrete steps, format as Step x: Call xxx tool with xxx: 'xxx' """
    """and xxx: 'xxx'" ], "task_nodes": [{"task": "task name must be from # TASK LIST #", """
    """"arguments": [ {"name": "parameter name", "value": "parameter value, either """
    """user-specified text or the specific name of the tool whose result is required by """
    """this node"} ]}], "task_links": [{"source": "task name i", "target": "task name j"}]}"""
    """\n\n# REQUIREMENTS #: \n1. the generated task steps and task nodes can resolve the """
    """given user request # USER REQUEST # perfectly. Task name must be selected from """
    """# TASK LIST #; \n2. the task steps should strictly aligned with the task nodes, and """
    """the number of task steps should be same with the task nodes; \n3. The task links """
    """(task_links) should reflect the temporal dependencies among task nodes, i.e. the """
    """order in which the APIs are invoked;"""
)
_REQUEST_PART = (
    "\n\n# USER REQUEST #: {{user_request}}\nnow please generate your result in a strict "
    "JSON format:\n# RESULT #:"
)


def baseline_prompt(nodes: Iterable[Mapping[str, Any]], request: str, typed: bool) -> str:
    """inference.py's prompt (no demonstrations) for `request`."""
    tools = "# TASK LIST #:\n"
    for node in nodes:
        tool = dict(node)
        if not typed:  # ignore_tool_type: parameters by name only
            tool["parameters"] = [p["name"] for p in tool.get("parameters") or []]
        tools += json.dumps(tool) + "\n"
    prompt = (_TYPED_PROMPT if typed else _NAMED_PROMPT) + _REQUEST_PART
    return tools + prompt.replace("{{user_request}}", request)


def parse_baseline(content: str) -> dict[str, Any] | None:
    """inference.py's reading of an answer (None where it fails or evaluate.py cannot use
    it: not an object with `task_nodes`)."""
    content = content.replace("\n", "").replace("\\_", "_").replace("\\", "")
    start = content.find("RESULT #:")
    if start != -1:
        content = content[start + len("RESULT #:") :]
    try:
        parsed = json.loads(content)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) and "task_nodes" in parsed else None


async def ask_baseline(models: ChatModels, prompt: str) -> str:
    """TaskBench's prompt as one user message (an answer cut off ends in "…")."""
    return await models.text("planner", [HumanMessage(prompt)], "answer TaskBench's prompt")
