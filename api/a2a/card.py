"""The agent card: who the planner is to an A2A client, built from the intent registry.

Skills are the registry's intents (with their example utterances); the interfaces are
the JSON-RPC endpoint at `/a2a`, for A2A 1.0 and 0.3 clients; the security scheme is the
API's bearer key (`CPA_API_KEYS`), declared only when keys are configured.
"""

from __future__ import annotations

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)

from graph.services import Services

RPC_PATH = "/a2a"
CARD_PATH = "/.well-known/agent-card.json"
BEARER = "bearer"
VERSION = "0.1.0"


def agent_card(services: Services, base_url: str, *, keys: bool) -> AgentCard:
    """The card for a server reachable at `base_url` (no trailing slash)."""
    registry = services.intents
    skills = []
    for name in registry.names():
        spec = registry.intents[name]
        examples = [text for texts in spec.examples.values() for text in texts]
        skills.append(
            AgentSkill(
                id=name,
                name=name,
                description=spec.label("en"),
                tags=[spec.kind],
                examples=examples[:10],
            )
        )
    card = AgentCard(
        name="cpa-planner",
        description=(
            "Plans and carries out requests for the CPA Desktop AI: a plan of ToDos, "
            "proposed for approval when a step changes something, then run step by step."
        ),
        version=VERSION,
        supported_interfaces=[
            AgentInterface(
                url=f"{base_url}{RPC_PATH}", protocol_binding="JSONRPC", protocol_version=v
            )
            for v in ("1.0", "0.3")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=skills,
    )
    if keys:
        card.security_schemes[BEARER].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer", description="an API key from CPA_API_KEYS"
                )
            )
        )
        card.security_requirements.append(SecurityRequirement(schemes={BEARER: StringList()}))
    return card
