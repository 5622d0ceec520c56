"""The state's `plan` channel: a validated `Plan` inside the graph, plain JSON in checkpoints.

Nodes read `state["plan"]` as a `Plan` and never validate it again. The plan is validated
where it enters the state instead, exactly once:

- a node writes a `Plan` it built (its constructor validated it): taken as it is;
- anything else written (a dict from `update_state`, Studio's state editor, an older
  node) is validated here; a bad one raises `InvalidUpdateError` and the state keeps
  what it had;
- a checkpoint holds the plan as the JSON dict that `Plan.model_dump(mode="json")` makes,
  the same form the state held before it held a `Plan`: checkpoints written either way
  load, and are validated once when they do.

A `Plan` in the state is shared by every step that reads it (a `LastValue` does the same):
nodes treat it as immutable and write a new one (`model_copy`, `Plan(...)`), as `lam.dag`
does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from langgraph.channels.base import BaseChannel
from langgraph.channels.last_value import LastValue
from langgraph.errors import EmptyChannelError, ErrorCode, InvalidUpdateError, create_error_message
from pydantic import ValidationError

from lam import Plan

PlanDict = dict[str, Any]

# LangGraph's "no value" of a channel: what an empty channel's `checkpoint()` returns and
# what `from_checkpoint` is given for a channel a checkpoint does not hold. Its name lives in
# `langgraph._internal`; the public API hands it out like this.
MISSING: Any = LastValue(object).checkpoint()

__all__ = ["PlanChannel", "PlanDict", "as_plan"]


def as_plan(value: Plan | PlanDict | None) -> Plan | None:
    """`value` as a `Plan`: a `Plan` as it is, a dict validated; ValidationError if it is none."""
    if value is None or isinstance(value, Plan):
        return value
    return Plan.model_validate(value)


class PlanChannel(BaseChannel[Plan | None, Plan | PlanDict | None, PlanDict | None]):
    """The last plan written (at most one write per step), kept as a validated `Plan`."""

    __slots__ = ("stored", "value")

    value: Plan | Any | None  # Any: MISSING until the first write
    stored: PlanDict | Any | None  # the checkpoint form of `value`, made once per value

    def __init__(self, typ: Any = Plan | None, key: str = "") -> None:
        super().__init__(typ, key)
        self.value = MISSING
        self.stored = MISSING

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlanChannel)

    def __hash__(self) -> int:
        return hash(PlanChannel)

    @property
    def ValueType(self) -> Any:
        return Plan | None

    @property
    def UpdateType(self) -> Any:
        return Plan | PlanDict | None

    def copy(self) -> Self:
        # The default copy goes through checkpoint() and from_checkpoint(): a validation.
        twin = self.__class__(self.typ, self.key)
        twin.value, twin.stored = self.value, self.stored
        return twin

    def from_checkpoint(self, checkpoint: PlanDict | Any | None) -> Self:
        loaded = self.__class__(self.typ, self.key)
        if checkpoint is not MISSING:
            loaded.value = as_plan(checkpoint)
            loaded.stored = checkpoint if isinstance(checkpoint, dict) else MISSING
        return loaded

    def update(self, values: Sequence[Plan | PlanDict | None]) -> bool:
        if not values:
            return False
        if len(values) != 1:
            raise InvalidUpdateError(
                create_error_message(
                    message=f"At key '{self.key}': can receive only one plan per step.",
                    error_code=ErrorCode.INVALID_CONCURRENT_GRAPH_UPDATE,
                )
            )
        try:
            self.value = as_plan(values[0])
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg']}"
                for e in exc.errors(include_url=False)[:6]
            )
            raise InvalidUpdateError(f"At key '{self.key}': not a valid plan: {problems}") from None
        self.stored = MISSING
        return True

    def get(self) -> Plan | None:
        if self.value is MISSING:
            raise EmptyChannelError()
        return self.value

    def is_available(self) -> bool:
        return self.value is not MISSING

    def checkpoint(self) -> PlanDict | Any | None:
        # Called for every checkpoint (each step), so the dump is made once per value.
        if self.stored is MISSING and self.value is not MISSING:
            self.stored = None if self.value is None else self.value.model_dump(mode="json")
        return self.stored
