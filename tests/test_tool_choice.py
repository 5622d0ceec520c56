"""benchmarks.tool_choice: what it counts, checked on two scripted planning calls."""

from __future__ import annotations

import json

import pytest

from benchmarks import tool_choice
from graph.config import Settings
from graph.llm import ChatModels
from tests.support.scripted import ScriptedChatModel


def step(tool: str, arguments: dict[str, object], after: list[int]) -> dict[str, object]:
    return {"title": tool, "description": tool, "tool": tool, "arguments": arguments,
            "after": after}  # fmt: skip


def test_right_tools_and_free_form_steps_are_counted(capsys: pytest.CaptureFixture[str]) -> None:
    # The first two labelled requests: "Find my tax files and shred them" (find_files and
    # shred_files wanted) and "Schedule a meeting with Tom ... and email him the agenda".
    answers = [
        {"goal": "tax", "steps": [step("files.find_files", {"query": "tax"}, []),
                                  step("llm", {}, [1])]},
        {"goal": "meeting", "steps": [step("llm", {}, []), step("desktop", {}, [])]},
    ]  # fmt: skip
    model = ScriptedChatModel.script(structured=answers)
    models = ChatModels(Settings(), {"planner": model})

    assert tool_choice.main(["--limit", "2", "--json"], models=models) == 0

    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert [r["named"] for r in rows] == [["files.find_files", "llm"], ["llm", "desktop"]]
    assert [r["hits"] for r in rows] == [1, 0]
    assert result["all"] == {
        "requests": 2,
        "right_tools": 1,
        "wanted": 4,
        "recall": 0.25,
        "steps": 4,
        "free_form": 3,
        "no_plan": 0,
    }
    assert model.remaining == 0


def test_a_request_without_a_plan_is_counted_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedChatModel.script(structured=["not json at all"] * 8)
    models = ChatModels(Settings(llm_max_retries=0), {"planner": model})

    assert tool_choice.main(["--limit", "1", "--json"], models=models) == 0

    summary = json.loads(capsys.readouterr().out)["all"]
    assert summary["no_plan"] == 1 and summary["right_tools"] == 0 and summary["steps"] == 0
