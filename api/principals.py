"""Who is speaking: the principal a credential names, and what it may do.

Every credential the server takes resolves to a `Principal` (`api.auth`): an entry of
`CPA_API_KEYS`, a key made with `cpa-planner keys create` (`api.keystore`), a bearer token
from an identity provider (`api.tokens`). A principal is

- a tenant: whose conversations it sees (one tenant never sees another's);
- an id: who speaks, a person (`user:anna`) or an agent (`cpa-desktop`); the `sender` of
  every LAM message it sends must be this id. `None` for a tenant-wide credential (the old
  `tenant:key` form, local mode), which may send as any sender of its tenant;
- scopes: what it may do (`Scope`).

The rules the server applies to a message (`authorize`), before anything is written:

- the sender is the principal's id (403 `wrong_sender`);
- a `request` (and `discover`) needs `request`; an `offer` of tools, a `done`/`failure`
  and an `agree`/`refuse` to a `propose` sent to this principal need `answer`; an
  `agree`/`refuse` to a `propose` sent to someone else of the tenant needs `approve`
  (checked where the waiting `propose` is known, `Accepting.answer`). A `propose` goes to the
  person who made the request, an `assign` to its agent; a `done`/`failure` is taken from
  the receiver of the `assign` only (`graph.answer_rules`), so an agent's credential answers
  only its own assigns and can approve nothing;
- the message's `metadata.principal` is set to who sent it (`stamp`): the LAM log records
  the principal of every message a client sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from api.errors import ApiError
from lam import LAMMessage, Performative
from lam.text import ID_PATTERN, MAX_ID_CHARS

TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
PRINCIPAL_PATTERN = re.compile(ID_PATTERN)
# Metadata the server writes on a message: a client's own values are replaced.
PRINCIPAL_KEY = "principal"
APPROVED_FOR_KEY = "approved_for"  # graph.answer_rules: an approver answered someone else's propose
# The A2A task a `request` opened (`api.a2a.mapping.TASK_ID_KEY`): only the A2A endpoint
# writes it, else a tenant could name another tenant's live task in its own conversation.
A2A_TASK_KEY = "a2a_task_id"
RESERVED_METADATA = (PRINCIPAL_KEY, APPROVED_FOR_KEY, A2A_TASK_KEY)


class Scope(StrEnum):
    """What a credential may do."""

    REQUEST = "request"  # open conversations (send `request`, `discover`)
    ANSWER = "answer"  # answer what was sent to it (propose, assign); offer tools
    APPROVE = "approve"  # agree to or refuse any propose of the tenant
    READ = "read"  # read the tenant's conversations, inboxes, events, tools
    METRICS = "metrics"  # scrape GET /metrics


ALL_SCOPES = frozenset(Scope)
# A person's credential when its scopes are not given.
PERSON_SCOPES = frozenset({Scope.REQUEST, Scope.ANSWER, Scope.READ})
# What `cpa-planner keys pair-desktop` gives a desktop agent: it answers its assigns.
AGENT_SCOPES = frozenset({Scope.ANSWER, Scope.READ})


class PrincipalError(ValueError):
    """A tenant, principal id or scope list is unusable; the message says which part."""


def parse_scopes(
    text: str | list[str] | tuple[str, ...], *, separators: str = "+, "
) -> frozenset[Scope]:
    """Scopes from `request+answer` (or a list); `*` or `all` is every scope."""
    items = (
        [t for t in re.split(f"[{re.escape(separators)}]", text) if t]
        if isinstance(text, str)
        else list(text)
    )
    if any(t in ("*", "all") for t in items):
        return ALL_SCOPES
    known = {s.value for s in Scope}
    unknown = [t for t in items if t not in known]
    if unknown:
        raise PrincipalError(
            f"unknown scope(s) {', '.join(sorted(unknown))}; the scopes are "
            f"{', '.join(s.value for s in Scope)}"
        )
    if not items:
        raise PrincipalError("no scopes given")
    return frozenset(Scope(t) for t in items)


def check_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.match(tenant):
        raise PrincipalError(
            "the tenant name must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return tenant


def check_principal_id(principal: str) -> str:
    if len(principal) > MAX_ID_CHARS or not PRINCIPAL_PATTERN.fullmatch(principal):
        raise PrincipalError(
            "the principal must be 1-128 letters, digits, '.', '_', ':' or '-' "
            "(a person such as user:anna, an agent such as cpa-desktop)"
        )
    return principal


@dataclass(frozen=True)
class Principal:
    """A tenant, who speaks (None: anyone of the tenant), and what it may do."""

    tenant: str
    id: str | None = None
    scopes: frozenset[Scope] = ALL_SCOPES

    @classmethod
    def tenant_wide(cls, tenant: str) -> Principal:
        """The old `tenant:key` form and local mode: any sender, every scope."""
        return cls(tenant, None, ALL_SCOPES)

    @property
    def name(self) -> str:
        """How the LAM log and the server log name it: its id, or `<tenant>:*`."""
        return self.id if self.id is not None else f"{self.tenant}:*"

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes

    def speaks_as(self, sender: str) -> bool:
        return self.id is None or sender == self.id

    def sender(self, default: str) -> str:
        """The sender of a message made for this principal (A2A): its id, else `default`."""
        return self.id if self.id is not None else default

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "principal": self.id,
            "scopes": sorted(s.value for s in self.scopes),
        }


def forbidden(message: str, field: str | None = None) -> ApiError:
    details = [{"field": field, "message": message}] if field else None
    return ApiError(403, "forbidden", message, details)


def require(principal: Principal, scope: Scope, doing: str) -> None:
    """403 unless the principal has `scope`."""
    if not principal.may(scope):
        raise forbidden(f"this credential ({principal.name}) may not {doing} (scope {scope.value})")


ANSWERS = frozenset(
    {Performative.AGREE, Performative.REFUSE, Performative.DONE, Performative.FAILURE}
)
APPROVALS = frozenset({Performative.AGREE, Performative.REFUSE})


def authorize(
    principal: Principal, message: LAMMessage, *, keep: tuple[str, ...] = ()
) -> LAMMessage:
    """The message as the server takes it from `principal`, stamped (see the module
    docstring); 403 for a sender or a kind of message the credential may not send.

    An `agree`/`refuse` needs `answer` or `approve` here; which one it needs depends on whom
    the `propose` was sent to, checked by `Accepting.answer`.
    """
    if not principal.speaks_as(message.sender):
        raise ApiError(
            403,
            "wrong_sender",
            f"this credential speaks as {principal.id}, not as {message.sender}",
            [{"field": "sender", "message": f"must be {principal.id}"}],
        )
    kind = message.performative
    if kind in (Performative.REQUEST, Performative.DISCOVER):
        require(principal, Scope.REQUEST, f"send a {kind.value}")
    elif kind in APPROVALS:
        if not (principal.may(Scope.ANSWER) or principal.may(Scope.APPROVE)):
            require(principal, Scope.ANSWER, f"send {kind.value}")
    elif kind in ANSWERS or kind is Performative.OFFER:
        require(principal, Scope.ANSWER, f"send {kind.value}")
    return stamp(message, principal, keep=keep)


def stamp(
    message: LAMMessage,
    principal: Principal,
    approved_for: str | None = None,
    *,
    keep: tuple[str, ...] = (),
) -> LAMMessage:
    """The message with `metadata.principal` (and `approved_for`) set by the server, and
    what only the server may write dropped (`keep`: what the server itself wrote)."""
    metadata = {
        k: v for k, v in (message.metadata or {}).items() if k not in RESERVED_METADATA or k in keep
    }
    metadata[PRINCIPAL_KEY] = principal.name
    if approved_for is not None:
        metadata[APPROVED_FOR_KEY] = approved_for
    return message.model_copy(update={"metadata": metadata})
