"""What the planner can do, who the caller speaks as, and the LAM message's schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api.auth import Anyone, TenantDep
from api.dependencies import ReplicaDep
from api.errors import error_responses
from api.local_mode import local_only
from api.offers import planner_offer
from lam import message_json_schema

router = APIRouter(tags=["capabilities"], dependencies=[Depends(local_only)])


@router.get(
    "/v1/capabilities",
    responses={
        200: {"description": "an `offer` LAM message: executors, intents, lam_version"},
        **error_responses(401, 503),
    },
)
async def capabilities(replica: ReplicaDep, tenant: TenantDep) -> dict[str, Any]:
    """What this planner can do, as an `offer`."""
    return planner_offer(replica.services, tenant)


@router.get("/v1/principal", responses=error_responses(401))
async def whoami(principal: Anyone) -> dict[str, Any]:
    """Who your credential speaks as: `{"tenant", "principal" (null: any sender of the
    tenant), "scopes"}` (docs/http.md, credentials)."""
    return principal.to_dict()


@router.get("/v1/lam/schema", responses=error_responses(401))
async def lam_schema(_tenant: TenantDep) -> dict[str, Any]:
    """The JSON Schema of a LAM message."""
    return message_json_schema()
