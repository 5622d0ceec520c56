"""The graph's state: the conversation's LAM log, and what the nodes derive from it.

The LAM log (`lam`) is the source of truth: every step appends the protocol messages it
produced (as wire dicts, so any checkpointer can store them). `intent`, `plan` and
`result` are the nodes' working copies of facts that are also in the log; `plan` is a
`lam.Plan`, validated once where it enters the state (`graph.plan_channel`). `messages` is
the chat-facing mirror (the request, the proposal as text, the answer) for Studio's chat
view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import add_messages

from graph.plan_channel import PlanChannel
from lam import Plan

LamDict = dict[str, Any]
Status = Literal["running", "waiting", "done", "failed"]
Language = Literal["en", "de"]


class IntentFound(TypedDict, total=False):
    """What the `intent` step found (`graph.front_door.choose_route` decides from it)."""

    intent: str | None  # a registry intent, or None (compound, no decision, router's other)
    confidence: float
    # Who decided: "rules" or "classifier" (no LLM), "llm" (the router model), "compound"
    # (several actions: nobody picks one intent), None (nothing decided, no router model).
    source: Literal["rules", "classifier", "llm", "compound"] | None
    rule: str | None
    read_only: bool  # the request only asks to look
    language: Language
    hints: list[str]  # intents seen in the request, for the planner's prompt
    # {"reason", "parts", "follows"} when several actions were found (graph.intents.compound)
    compound: dict[str, Any] | None
    choice: str | None  # the router's answer when it is no intent: other_task, nothing_to_do
    router_error: str | None  # why the router model gave no usable answer
    reply: str | None  # a canned reply that fits what was said (small talk), in its language


def action_parts(found: IntentFound | None) -> list[str]:
    """The actions the front door found in a compound request (none for one action): the
    plan must have a step for each (`nodes.check.coverage_problems`)."""
    return [str(p) for p in ((found or {}).get("compound") or {}).get("parts") or []]


def action_follows(found: IntentFound | None) -> list[bool]:
    """For each of `action_parts`, whether it needs what the action before it gives (the
    plan's step for it then waits for the previous action's step); False where unknown."""
    follows = [bool(f) for f in ((found or {}).get("compound") or {}).get("follows") or []]
    return [n < len(follows) and follows[n] for n in range(len(action_parts(found)))]


def append_lam(
    existing: list[LamDict] | None, new: LamDict | Iterable[LamDict] | None
) -> list[LamDict]:
    """Append LAM messages, skipping any whose id the log already holds.

    Idempotent by message id, so a node that runs again after a resume cannot log the
    same message twice.
    """
    log = list(existing or [])
    if new is None:
        return log
    batch = [new] if isinstance(new, dict) else list(new)
    if not batch:
        return log
    seen = {m["id"] for m in log}
    for message in batch:
        if message["id"] not in seen:
            seen.add(message["id"])
            log.append(message)
    return log


def append_lam_batch(
    existing: list[LamDict] | None, writes: Iterable[LamDict | Iterable[LamDict] | None]
) -> list[LamDict]:
    """`append_lam` for a whole superstep's writes at once (DeltaChannel's reducer shape)."""
    batch: list[LamDict] = []
    for write in writes:
        if write is not None:
            batch.extend([write] if isinstance(write, dict) else write)
    return append_lam(existing, batch)


def merge_started(existing: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Steps started while their plan was written, by fingerprint: later rounds add to them."""
    return {**(existing or {}), **(new or {})}


class PlannerInput(TypedDict, total=False):
    """What a run starts from: request text, a LAM `request`, or a chat message."""

    request: str
    lam: list[LamDict]
    messages: list[AnyMessage]


class PlannerState(TypedDict, total=False):
    """The whole state inside the graph."""

    # A DeltaChannel: a checkpoint stores only the messages its step appended, not the whole
    # log again (quadratic; see docs/checkpointer.md). A full copy every 1000 updates bounds
    # the replay when a conversation is loaded.
    lam: Annotated[list[LamDict], DeltaChannel(append_lam_batch, snapshot_frequency=1000)]
    messages: Annotated[list[AnyMessage], add_messages]
    request: str
    conversation_id: str
    intent: IntentFound | None
    # A `Plan` inside the graph (no node validates it again), its JSON dict in checkpoints.
    plan: Annotated[Plan | None, PlanChannel()]
    # What a trusted plan template declared each step does (`graph.approval.DeclaredEffects`):
    # written with the plan, read by `approve`; a plan without it is judged by its executors.
    plan_effects: dict[str, Any] | None
    plan_problems: list[str]
    rejected_answer: str | None  # the planner model's last answer that did not fit (repairs)
    repairs: int
    # The outcomes of steps started while the planner wrote (`nodes.early_start`), by the
    # step's fingerprint, so that a repaired plan that keeps a step does not run it again.
    started: Annotated[dict[str, Any], merge_started]
    replans: int
    status: Status
    result: Any
