"""The LAM API's endpoints (docs/http.md), one router per resource; `server.create_app`
includes `router`, which holds them in this order (the order of the OpenAPI document):

    health          GET /healthz, GET /readyz
    lam             POST /v1/lam: every LAM message sent to the planner
    conversations   GET /v1/conversations[/{id}[/inbox|/events]]
    capabilities    GET /v1/capabilities, /v1/principal, /v1/lam/schema

Every route: without API keys, only this machine's programs are served (`api.local_mode`,
a dependency of each router). The other endpoints have their own modules: `api.tools`,
`api.overview`, `api.history`, `api.metrics`, `api.console`, `api.a2a`.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import capabilities, conversations, health, lam

router = APIRouter()
for _resource in (health, lam, conversations, capabilities):
    router.include_router(_resource.router)

__all__ = ["router"]
