"""What an executor is, and the registry that finds one by name.

Executors are async callables with a name and a description (the planner's prompt lists
them). The built-ins live in `nodes/executors/`; third parties register theirs under the
Python entry-point group `cpa_planner.executors` (an `Executor` instance, or a callable that
takes `Settings` and returns one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from graph.config import Settings
from graph.llm import ChatModels
from lam import LAMMessage, ToDo, Tool, ToolCall

ENTRY_POINT_GROUP = "cpa_planner.executors"


class ExecutorError(Exception):
    """A ToDo failed; `code` is machine-readable, `retryable` allows another attempt."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        reply: LAMMessage | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        # The `failure` another agent sent, logged as it came instead of one of ours.
        self.reply = reply


@dataclass(frozen=True)
class Answered:
    """An executor's output together with the `done` another agent sent for it."""

    output: Any
    message: LAMMessage


@dataclass(frozen=True)
class ExecutorCall:
    """Everything an executor gets for one ToDo."""

    todo: ToDo
    # The ToDo's own inputs plus `dependencies`: {todo id: output} of what it depends on.
    inputs: dict[str, Any]
    request: str
    conversation_id: str
    assign: LAMMessage
    settings: Settings
    models: ChatModels
    attempt: int = 1
    # The tool the ToDo runs, as its runner knows it, the arguments resolved and checked
    # (also in the `assign`'s content); and the tool's catalogue entry. None: a free-form step.
    tool: ToolCall | None = None
    tool_spec: Tool | None = None


@runtime_checkable
class Executor(Protocol):
    name: str
    description: str
    # Where the `assign` goes: an agent id such as `cpa-desktop`, or None for `executor:<name>`.
    receiver: str | None
    # An executor that waits with `interrupt()` may also set `interrupts = True`: its ToDo's
    # `assign` is then checkpointed before it waits, so the log keeps it as first sent.
    # What its steps do to the world (`graph.approval`): `effect = "none"`, `"read"`,
    # `"send"`, ... for all of them, or a method `effect_for(todo)` deciding per step.
    # Without either, a step is taken to change something: it needs the person's approval.
    # How the planner sees it (`graph.tools`): `input_schema`, the JSON Schema of a free-form
    # step's `inputs` (without one: any object), `returns`, a sentence on its output, and
    # `runs_tools = True` if catalogue tools may name it as the executor that runs them,
    # `free_form = False` if it runs nothing else (a step of it must name one of its tools).

    async def __call__(self, call: ExecutorCall) -> Any: ...


class ExecutorRegistry:
    """Executors by name."""

    def __init__(self, executors: Iterable[Executor] = ()) -> None:
        self._executors: dict[str, Executor] = {}
        for executor in executors:
            self.register(executor)

    def register(self, executor: Executor) -> None:
        if not isinstance(executor, Executor):
            raise TypeError(f"{executor!r} is not an executor (needs name, description, __call__)")
        self._executors[executor.name] = executor

    def get(self, name: str) -> Executor:
        try:
            return self._executors[name]
        except KeyError:
            known = ", ".join(sorted(self._executors))
            raise KeyError(f"unknown executor {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._executors

    def __iter__(self) -> Iterator[Executor]:
        return iter(self._executors.values())

    def names(self) -> list[str]:
        return sorted(self._executors)

    def describe(self) -> dict[str, str]:
        return {name: self._executors[name].description for name in self.names()}

    def load_entry_points(self, settings: Settings) -> list[str]:
        """Register third-party executors; returns the names added."""
        added = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            obj = ep.load()
            executor = obj if isinstance(obj, Executor) else obj(settings)
            self.register(executor)
            added.append(executor.name)
        return added

    def copy(self) -> ExecutorRegistry:
        return ExecutorRegistry(self._executors.values())
