"""The built-in executors (docs/protocol.md, "Plans and ToDos"), and `template` (no LLM)."""

from nodes.executors.desktop import DesktopExecutor
from nodes.executors.http import HttpExecutor
from nodes.executors.human import HumanExecutor
from nodes.executors.llm import LLMExecutor
from nodes.executors.template import TemplateExecutor

__all__ = ["DesktopExecutor", "HttpExecutor", "HumanExecutor", "LLMExecutor", "TemplateExecutor"]
