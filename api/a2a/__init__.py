"""A2A (Agent2Agent) beside the LAM API: any A2A client can use the planner.

    card           the agent card, built from the intent registry
    mapping        LAM ↔ A2A: a conversation's turn as a task, a reply as an answer
    planner_agent  the SDK's request handler with our AgentExecutor and task store
    routes         `/.well-known/agent-card.json` and the JSON-RPC endpoint `/a2a`

The mapping, both directions, is in docs/a2a.md.
"""

from api.a2a.planner_agent import A2AServer
from api.a2a.routes import router

__all__ = ["A2AServer", "router"]
