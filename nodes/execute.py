"""execute: every ToDo starts the moment its own dependencies are done.

Each ToDo runs as a LangGraph functional-API task inside this node, so its result is saved
as a pending write in the checkpoint as soon as it finishes: a node that resumes (after an
interrupt, a crash, a restart) gets finished ToDos' results back without running them
again. A task's identity is its call index within the node, so every task is called up
front, in plan order, and waits *inside its body* for its dependencies; the call order is
then the same on every run, whatever order ToDos finish in.

A ToDo that waits for a person or the desktop agent raises an interrupt; only its own
dependents wait with it, everything else runs on. When all that can run has run, the node
raises one `GraphInterrupt` holding every interrupt, so several ToDos can wait at once and
be answered together (`Command(resume={interrupt_id: answer, ...})`).

A ToDo that runs a tool gets it from the catalogue as it is when the ToDo starts: its
arguments' references to earlier steps are replaced by their outputs, and the arguments
checked against the tool's schema once more (`graph.tools.arguments.resolved_call`). A tool
that left the catalogue since the plan was made fails its ToDo (`tool_unavailable`), as do
arguments that no longer fit (`bad_arguments`), before anything is handed out. For a ToDo
that waits, what was first handed out (or refused) is kept, so a resume after the answer
never judges it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.errors import GraphInterrupt
from langgraph.func import task
from langgraph.types import Interrupt

from graph import lamlog
from graph.executor_registry import Answered, ExecutorCall, ExecutorError
from graph.plan_proposal import current_plan
from graph.services import Services, get_services
from graph.state import LamDict, PlannerState
from graph.telemetry import trace_metadata
from graph.telemetry.contract import NotRunYet
from graph.tools.arguments import CallError, resolved_call
from graph.tools.catalogue import Catalogue
from graph.tools.sources import tenant_of
from lam import LAMMessage, MessageFactory, Performative, Plan, Tool, ToolCall
from lam.dag import propagate_failure
from lam.tools import resolve_references

Outcome = dict[str, Any]


class _Blocked(NotRunYet):
    """A dependency is waiting on an interrupt; this ToDo waits for the next run."""


# An executor whose receiver is this asks the person who made the request (`human`).
PERSON = "user"


@dataclass
class _Run:
    """What the tasks of one node run share (in memory; never checkpointed)."""

    plan: Plan
    services: Services
    request: str
    conversation_id: str
    round_key: str
    events: dict[str, asyncio.Event]
    catalogue: Catalogue
    requester: str = PERSON
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)

    def emit(self, message: LAMMessage) -> None:
        # Live view for stream_mode="custom" (CLI, server); the log gets it when the node ends.
        get_stream_writer()({"lam": message.to_dict()})


def _outcome(
    todo_id: str,
    status: Literal["done", "failed", "skipped"],
    *,
    output: Any = None,
    error: str | None = None,
    messages: list[LAMMessage] | None = None,
) -> Outcome:
    return {
        "todo_id": todo_id,
        "status": status,
        "output": output,
        "error": error,
        "lam": [m.to_dict() for m in messages or []],
    }


@task
async def _as_first_sent(message: LamDict) -> LamDict:
    """Returns its argument; as a task, a re-run gets the first run's result back."""
    return message


@task  # named `graph.telemetry.contract.TODO_TASK`: a ToDo's span and metrics
async def run_todo(todo_id: str, run: _Run) -> Outcome:
    """One ToDo: wait for its dependencies, then run its executor with retries."""
    todo = run.plan.todo(todo_id)
    for dep in todo.depends_on:
        await run.events[dep].wait()
    if any(dep in run.blocked for dep in todo.depends_on):
        raise _Blocked(todo_id)
    unmet = [dep for dep in todo.depends_on if run.outcomes[dep]["status"] != "done"]
    if unmet:
        reasons = ", ".join(f"{d} ({run.outcomes[d]['status']})" for d in unmet)
        return _outcome(todo_id, "skipped", error=f"skipped: depends on {reasons}")

    settings = run.services.settings
    executor = run.services.executors.get(todo.executor)
    outputs = {dep: run.outcomes[dep]["output"] for dep in todo.depends_on}
    planner = MessageFactory(lamlog.PLANNER, run.conversation_id)
    receiver = executor.receiver or f"executor:{executor.name}"
    if receiver == PERSON:  # "the person": the one who asked (`user:anna` with principals)
        receiver = run.requester
    spec: Tool | None = None
    try:
        tool_call: ToolCall | None = None
        if todo.tool is not None:
            entry, tool_call = resolved_call(todo, run.catalogue, outputs)
            spec = entry.tool
        own_inputs = resolve_references(todo.inputs, outputs)
    except (CallError, KeyError) as exc:
        refused = exc if isinstance(exc, CallError) else _unresolved(exc)
        message = planner.failure(
            lamlog.PLANNER,
            refused.code,
            refused.message,
            todo_id=todo_id,
            message_id=lamlog.stable_id(run.conversation_id, "failure", run.round_key, todo_id),
        )
    else:
        message = planner.assign(
            receiver,
            todo,
            {**own_inputs, "dependencies": outputs},
            tool=tool_call,
            message_id=lamlog.stable_id(run.conversation_id, "assign", run.round_key, todo_id),
            metadata=trace_metadata(),  # the desktop agent can continue the ToDo's trace
        )
    if getattr(executor, "interrupts", False):
        # This ToDo's body runs again when its answer arrives; the checkpointed copy keeps
        # the `assign` exactly as first sent (its timestamp orders it before the answer),
        # or the refusal to send one.
        message = LAMMessage.from_dict(await _as_first_sent(message.to_dict()))
    run.emit(message)
    if message.performative is Performative.FAILURE:
        error = message.content["error"]
        return _outcome(
            todo_id, "failed", error=f"{error['code']}: {error['message']}", messages=[message]
        )
    assign = message
    inputs: dict[str, Any] = assign.content["inputs"]
    sent_tool = assign.content.get("tool")
    tool = ToolCall.model_validate(sent_tool) if sent_tool is not None else None
    worker = MessageFactory(receiver, run.conversation_id)

    attempts = settings.todo_retries + 1
    for attempt in range(1, attempts + 1):
        call = ExecutorCall(
            todo=todo,
            inputs=inputs,
            request=run.request,
            conversation_id=run.conversation_id,
            assign=assign,
            settings=settings,
            models=run.services.models,
            attempt=attempt,
            tool=tool,
            tool_spec=spec,
        )
        try:
            result = await asyncio.wait_for(executor(call), settings.todo_timeout_s)
        except GraphInterrupt:
            raise
        except ExecutorError as exc:
            error, retryable, reply = exc, exc.retryable, exc.reply
        except TimeoutError:
            error = ExecutorError(
                "timeout", f"no result within {settings.todo_timeout_s:g} s", retryable=True
            )
            retryable, reply = True, None
        except Exception as exc:
            error = ExecutorError("executor_error", f"{type(exc).__name__}: {exc}")
            retryable, reply = True, None
        else:
            if isinstance(result, Answered):
                output, done = result.output, result.message
            else:
                output = result
                done = worker.done(
                    assign,
                    output,
                    todo_id=todo_id,
                    message_id=lamlog.stable_id(
                        run.conversation_id, "done", run.round_key, todo_id
                    ),
                )
            run.emit(done)
            return _outcome(todo_id, "done", output=output, messages=[assign, done])
        if retryable and attempt < attempts:
            await asyncio.sleep(settings.todo_retry_backoff_s * 2 ** (attempt - 1))
            continue
        failure = reply or worker.failure(
            lamlog.PLANNER,
            error.code,
            error.message,
            todo_id=todo_id,
            in_reply_to=assign.id,
            message_id=lamlog.stable_id(run.conversation_id, "failure", run.round_key, todo_id),
        )
        run.emit(failure)
        tries = f" (after {attempt} attempts)" if attempt > 1 else ""
        return _outcome(
            todo_id,
            "failed",
            error=f"{error.code}: {error.message}{tries}",
            messages=[assign, failure],
        )
    raise AssertionError("unreachable")


def _unresolved(exc: KeyError) -> CallError:
    return CallError(
        "bad_arguments", f"an input refers to {exc.args[0]!r}, whose output is not at hand"
    )


async def execute(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    services = get_services(config)
    plan = current_plan(state)
    pending = [t.id for t in plan.todos if t.status == "pending"]
    uses_tools = any(t.tool is not None for t in plan.todos if t.status == "pending")
    run = _Run(
        plan=plan,
        services=services,
        request=state["request"],
        conversation_id=lamlog.conversation_id(state, config),
        round_key=f"{lamlog.current_request(state)['id']}/{state.get('replans', 0)}",
        events={t.id: asyncio.Event() for t in plan.todos},
        requester=lamlog.requester(state),
        # Read once per pass, and only for a plan that runs tools (free-form steps need none).
        catalogue=await services.tools.catalogue(tenant_of(config)) if uses_tools else Catalogue(),
    )
    # ToDos done in an earlier round are dependencies like any other.
    for todo in plan.todos:
        if todo.status != "pending":
            run.outcomes[todo.id] = _outcome(todo.id, todo.status, output=todo.output)  # type: ignore[arg-type]
            run.events[todo.id].set()

    futures = {}
    for todo_id in pending:
        futures[todo_id] = run_todo(todo_id, run)
        # Let ToDos that can start, start, while the next calls are prepared (each costs
        # LangGraph a fraction of a millisecond; a large plan would delay its first ToDo).
        await asyncio.sleep(0)

    async def settle(todo_id: str) -> Outcome | BaseException:
        try:
            outcome = await futures[todo_id]
        except (GraphInterrupt, _Blocked) as exc:
            run.blocked.add(todo_id)
            return exc
        else:
            run.outcomes[todo_id] = outcome
            return outcome
        finally:
            run.events[todo_id].set()

    settled = await asyncio.gather(*(settle(t) for t in pending))
    interrupts: list[Interrupt] = [
        i for s in settled if isinstance(s, GraphInterrupt) for i in s.args[0]
    ]
    if interrupts:
        raise GraphInterrupt(interrupts)
    return _apply(plan, run.outcomes, pending)


def _apply(plan: Plan, outcomes: dict[str, Outcome], ran: list[str]) -> dict[str, Any]:
    """The finished round as a state update: ToDo statuses and the LAM messages in order."""
    todos = []
    for todo in plan.todos:
        outcome = outcomes.get(todo.id)
        if todo.id in ran and outcome is not None:
            # No validation needed: the output was checked as JSON when its `done` was made.
            todo = todo.model_copy(
                update={
                    "status": outcome["status"],
                    "output": outcome["output"],
                    "error": outcome["error"],
                }
            )
        todos.append(todo)
    new_plan = Plan(goal=plan.goal, todos=todos)
    for todo in todos:
        if todo.status == "failed":
            # Marks the dependents with the reason, the same way everywhere.
            new_plan = propagate_failure(new_plan, todo.id, todo.error)
    messages: list[LamDict] = [m for t in ran for m in outcomes[t]["lam"]]
    messages.sort(key=lambda m: m["timestamp"])
    return {"plan": new_plan, "lam": messages}


def after_execute(state: PlannerState) -> Literal["replan", "respond"]:
    plan = current_plan(state)
    failed = any(t.status == "failed" for t in plan.todos)
    return "replan" if failed else "respond"
