"""Early start: the steps of a plan that need nobody's approval run while the planner writes.

With `stream_plans` (the default) the `plan` node reads the planner model's answer as it
streams (`graph.llm.ChatModels.structured_stream`, `graph.plan_stream.PartialPlan`). Each
step that is complete (the next one has begun) is dispatched at once when

- it reads as a step and its tool and arguments check out against the catalogue (the
  `check` node's own checks, `graph.tools.arguments`),
- every step it depends on is earlier and already dispatched (its dependencies are known),
- it does not repeat a step already dispatched (the plan leaves such repeats out,
  `graph.plan_steps`),
- its effect is `none` or `read` (`graph.approval.step_effect`), the model did not flag it,
  the policy is not `always`, and its executor never waits for anyone (no `desktop`,
  `human`, nor anything that interrupts).

When the answer ends and the plan as a whole has no problem `check` would find, every other
such step is dispatched too (the ones after a step that just became known), so that nothing
that could run waits for `check` → `approve` → `execute`; the node returns once they have
all finished. Steps that need approval, and their dependents, stay `pending` for `approve`
and `execute`, as without streaming. A plan with problems dispatches nothing more: it goes
back to the planner, and what already ran is kept.

Each step runs as `execute`'s ToDo task (`nodes.execute.run_todo`, the same retries, LAM
`assign`/`done`, live events), called inside this node: its result is a pending write the
moment it finishes, so a node run again after a crash gets it back without running the step
again. A task's identity is its call index plus its name; steps are dispatched in the order
they complete in the answer, the same order on every run of the same answer, and each
task is named by the step's *fingerprint* (tool or executor, arguments, and the
fingerprints of what it depends on), so a different answer after a crash cannot be handed
another step's result.

What a person watching sees meanwhile: the plan as written so far
(`graph.plan_stream.written_so_far`), on the custom stream whenever a step is written, and
as a pending write of the checkpoint (a task's result) right after each step is dispatched
and once the answer is whole, before the node waits for the steps still running. Those
records are tied to the dispatches, never to how the answer came in pieces, so the steps'
call indices stay the same on every run of the same answer.

Finished steps' outcomes are also kept in the state (`started`, by fingerprint and request)
so that a later planning round of the same request (a repair, a retry after an answer that
was no plan) reuses the result of any step it writes again instead of running it twice.
The LAM log gets these steps' messages after the round's own (the plan's `propose`), in
the order they happened; their timestamps show that they ran while the plan was written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.func import task
from pydantic import BaseModel, ValidationError

from graph import lamlog
from graph.approval import step_effect
from graph.effects import HARMLESS
from graph.llm import ChatModels
from graph.plan_steps import written_step
from graph.plan_stream import WRITTEN, PartialPlan, written_so_far
from graph.services import Services
from graph.state import LamDict, PlannerState
from graph.telemetry.contract import TODO_TASK, NotRunYet
from graph.tools.arguments import todo_problems
from graph.tools.catalogue import Catalogue
from graph.tools.sources import tenant_of
from lam import Plan, ToDo
from lam.dag import propagate_failure
from lam.tools import STEP_REFERENCE, step_reference
from nodes.check import coverage_problems, problems_of
from nodes.execute import Outcome, _Run, run_todo

logger = logging.getLogger(__name__)


async def _early_todo(todo_id: str, run: _Run, fingerprint: str) -> Outcome:
    """`run_todo`'s body; the outcome says which step it was (its fingerprint)."""
    body = cast(Callable[[str, _Run], Awaitable[Outcome]], run_todo.func)
    return {**await body(todo_id, run), "fingerprint": fingerprint}


# Named as `execute`'s ToDo task, so telemetry sees an early step as the ToDo it is.
_named: Any = task(name=TODO_TASK)
_early_task: Any = _named(_early_todo)


async def _as_written(record: dict[str, Any]) -> dict[str, Any]:
    """Returns its argument: as a task, a pending write of the checkpoint when it ends."""
    return record


_recording: Any = task(name=WRITTEN)
_record_task: Any = _recording(_as_written)


def fingerprint(todo: ToDo, of: dict[str, str], request_id: str) -> str:
    """What makes a step the same step in another plan of the same request: what it runs,
    with what, after which steps (by their own fingerprints, not their ids)."""

    def keyed(value: Any) -> Any:
        ref = step_reference(value)
        if ref is not None:
            return {STEP_REFERENCE: of.get(ref, ref)}
        if isinstance(value, dict):
            return {k: keyed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [keyed(v) for v in value]
        return value

    body: dict[str, Any] = {
        "request": request_id,
        "executor": todo.executor,
        "after": sorted(of.get(dep, dep) for dep in todo.depends_on),
    }
    if todo.tool is not None:
        body["tool"] = [todo.tool.name, keyed(todo.tool.arguments)]
    else:  # a free-form step: its words are what it does
        body["step"] = [todo.title, todo.description, keyed(todo.inputs)]
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class EarlyStart:
    """One planning call's early steps: dispatched as the answer grows, settled at its end."""

    def __init__(
        self,
        state: PlannerState,
        config: RunnableConfig,
        services: Services,
        catalogue: Catalogue,
        max_steps: int,
    ) -> None:
        self.state = state
        self.services = services
        self.catalogue = catalogue
        self.max_steps = max_steps
        self.request_id = str(lamlog.current_request(state)["id"])
        self.started: dict[str, Any] = dict(state.get("started") or {})
        self.partial = PartialPlan()
        self.todos: dict[str, ToDo] = {}  # dispatched, by id
        self.fingerprints: dict[str, str] = {}
        self.settling: list[asyncio.Task[None]] = []
        self.ran: list[str] = []  # dispatched as tasks (not reused)
        self.as_written: dict[str, ToDo] = {}  # every step written so far that reads as one
        self.recorded: list[Any] = []  # the tasks that record the plan as written
        self.whole = False  # the answer has ended: no record per dispatch any more
        key = f"{self.request_id}/{state.get('replans', 0)}/plan{state.get('repairs', 0)}"
        self.run = _Run(
            plan=Plan(goal="", todos=[]),
            services=services,
            request=state["request"],
            conversation_id=lamlog.conversation_id(state, config),
            round_key=key,
            events={},
            catalogue=catalogue,
        )

    @classmethod
    async def begin(
        cls, state: PlannerState, config: RunnableConfig, services: Services, max_steps: int
    ) -> EarlyStart:
        # Steps are checked and run against the tenant's whole catalogue, as `check` and
        # `execute` do (the planner may have been shown fewer tools).
        catalogue = await services.tools.catalogue(tenant_of(config))
        return cls(state, config, services, catalogue, max_steps)

    # While the answer streams ------------------------------------------------------------

    async def written(
        self,
        models: ChatModels,
        schema: type[BaseModel],
        messages: list[Any],
        what: str,
        json_schema: dict[str, Any],
    ) -> Any:
        """The planner's answer (as `ChatModels.structured` gives it), its steps dispatched
        as they complete. Raises `LLMError` like `structured`; dispatched steps run on."""
        answer = await models.structured_stream(
            "planner", schema, messages, self._on_text, what, json_schema=json_schema
        )
        return answer

    def _on_text(self, text: str) -> None:
        before = len(self.partial.steps)
        fresh = self.partial.feed(text)
        for number, raw in enumerate(fresh, before + 1):
            self._consider_written(raw, number)
        if fresh:
            self._announce()

    def _consider_written(self, raw: dict[str, Any], number: int) -> None:
        try:
            todo = written_step(raw, number, self.max_steps, self.catalogue)
        except (ValidationError, ValueError):
            return  # `check` (or the parse of the whole answer) will name what is wrong
        self.as_written[todo.id] = todo
        if self._eligible(todo):
            self._dispatch(todo)

    # What a person watching sees ---------------------------------------------------------

    def _so_far(self) -> dict[str, Any]:
        """The plan as written so far; steps that ran in an earlier round with their result."""
        todos = []
        for todo in self.as_written.values():
            kept = self.run.outcomes.get(todo.id) if todo.id not in self.ran else None
            if kept is not None:
                todo = todo.model_copy(update={k: kept[k] for k in ("status", "output", "error")})
            todos.append(todo)
        return written_so_far(self.partial.goal or "", todos, self.ran)

    def _announce(self) -> None:
        """The plan so far on the custom stream (the live views)."""
        get_stream_writer()(self._so_far())

    def _record(self) -> None:
        """The plan so far as a pending write of the checkpoint (any process's view)."""
        self.recorded.append(_record_task(self._so_far()))

    def _eligible(self, todo: ToDo) -> bool:
        if todo.requires_approval or self.services.settings.approval_policy == "always":
            return False
        if todo.id in self.todos or any(dep not in self.todos for dep in todo.depends_on):
            return False
        if fingerprint(todo, self.fingerprints, self.request_id) in self.fingerprints.values():
            return False  # a repeat of a step dispatched already: the plan leaves it out
        if todo.executor not in self.services.executors:
            return False
        executor = self.services.executors.get(todo.executor)
        if getattr(executor, "interrupts", False):
            return False
        if step_effect(todo, self.services.executors, None, self.catalogue) not in HARMLESS:
            return False
        return not todo_problems(todo, self.catalogue, {*self.todos, todo.id})

    def _dispatch(self, todo: ToDo) -> None:
        fp = fingerprint(todo, self.fingerprints, self.request_id)
        self.todos[todo.id] = todo
        self.fingerprints[todo.id] = fp
        self.run.plan = Plan(goal=self.partial.goal or "", todos=list(self.todos.values()))
        event = self.run.events[todo.id] = asyncio.Event()
        kept = self.started.get(fp)
        if kept is not None:  # ran in an earlier round of this request: not again
            self.run.outcomes[todo.id] = {**kept, "todo_id": todo.id, "lam": []}
            event.set()
            return
        self.ran.append(todo.id)
        future = _early_task(todo.id, self.run, fp)
        if not self.whole:
            self._record()  # one record per dispatch: the call indices do not depend on pieces

        async def settle() -> None:
            try:
                outcome = await future
                if outcome.get("fingerprint") == fp:
                    self.run.outcomes[todo.id] = outcome
                else:
                    # A result saved for another step at this place, by a run of the node
                    # that heard another answer before a crash: not this step's; it and
                    # its dependents are left to `execute`.
                    self.run.blocked.add(todo.id)
            except NotRunYet:  # a step it depends on got another step's result
                self.run.blocked.add(todo.id)
            finally:
                event.set()

        self.settling.append(asyncio.ensure_future(settle()))

    # When the answer has ended --------------------------------------------------------------

    async def finish(self, plan: Plan, update: dict[str, Any]) -> dict[str, Any]:
        """`update` (the plan's proposal) with every step that can run without approval run
        (when the whole plan checks out) and the outcomes in the plan and the log."""
        mismatched = [
            t.id
            for t in plan.todos
            if t.id in self.todos and self._fingerprint_in(plan, t) != self.fingerprints[t.id]
        ]
        self.whole = True
        if mismatched:  # a retried call wrote other steps: those results fit no step here
            logger.warning("steps started early are not in the final plan: %s", mismatched)
        else:
            self.partial.goal, self.as_written = plan.goal, {t.id: t for t in plan.todos}
            if not self._problems(plan):
                self._dispatch_rest(plan)
            self._record()  # the whole plan, while the steps still running end
            self._announce()
        await self.settled()
        todos = []
        for todo in plan.todos:
            outcome = self.run.outcomes.get(todo.id)
            if outcome is not None and todo.id not in mismatched:
                todo = todo.model_copy(
                    update={
                        "status": outcome["status"],
                        "output": outcome["output"],
                        "error": outcome["error"],
                    }
                )
            todos.append(todo)
        done = Plan(goal=plan.goal, todos=todos)
        for todo in todos:
            if todo.status == "failed":
                done = propagate_failure(done, todo.id, todo.error)
        return {**self.after(update), "plan": done}

    def after(self, update: dict[str, Any]) -> dict[str, Any]:
        """`update` with the early steps' messages (in time order) and outcomes added; for
        a round that ended without a plan, after `settled`."""
        ran = [t for t in self.ran if t in self.run.outcomes]
        messages: list[LamDict] = [m for t in ran for m in self.run.outcomes[t]["lam"]]
        if not messages:
            return update
        # After the round's own messages (the plan's `propose`, a refusal): a reader of the
        # log (`lam.log`) takes a proposal after ToDos ran for a re-plan. Their timestamps
        # say when they ran.
        messages = [*update.get("lam", []), *sorted(messages, key=lambda m: m["timestamp"])]
        started = {
            self.fingerprints[t]: {
                k: v for k, v in self.run.outcomes[t].items() if k not in ("lam", "fingerprint")
            }
            for t in ran
            if self.run.outcomes[t]["status"] in ("done", "failed")
        }
        return {**update, "lam": messages, "started": started}

    async def settled(self) -> None:
        """Until every dispatched step has finished (and the plan so far is recorded)."""
        if self.settling or self.recorded:
            await asyncio.gather(*self.settling, *self.recorded)

    def _fingerprint_in(self, plan: Plan, todo: ToDo) -> str:
        of: dict[str, str] = {}
        for t in plan.todos:  # dependencies come first in an acyclic plan of written steps
            of[t.id] = fingerprint(t, of, self.request_id)
            if t.id == todo.id:
                break
        return of[todo.id]

    def _problems(self, plan: Plan) -> list[str]:
        settings = self.services.settings
        problems = problems_of(
            plan, self.catalogue, self.services.executors.names(), settings.max_todos
        )
        return problems + coverage_problems(plan, self.state)

    def _dispatch_rest(self, plan: Plan) -> None:
        """Every step not yet dispatched that can run without approval, dependencies first."""
        progress = True
        while progress:
            progress = False
            for todo in plan.todos:
                if self._eligible(todo):
                    self._dispatch(todo)
                    progress = True
