"""The twelve LAM performatives: what a message *does* (asks, informs, proposes...)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Performative"]


class Performative(StrEnum):
    """What a message does; the value is its lower-case name on the wire."""

    REQUEST = "request"
    INFORM = "inform"
    PROPOSE = "propose"
    AGREE = "agree"
    REFUSE = "refuse"
    CONFIRM = "confirm"
    FAILURE = "failure"
    DONE = "done"
    ROUTE = "route"
    DISCOVER = "discover"
    OFFER = "offer"
    ASSIGN = "assign"
