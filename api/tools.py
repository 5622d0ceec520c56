"""`GET /v1/tools`: the action catalogue the tenant's planner sees (docs/tools.md).

With `?request=TEXT`, only what the planner would show for that request: every executor,
and the tools closest to it (at most `planner_max_tools`), ranked. Agents add their tools
with an `offer` (`api.offers`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth import TenantDep
from api.dependencies import ReplicaDep
from api.errors import error_responses
from api.local_mode import local_only
from graph.tools.narrowing import catalogue_view

router = APIRouter(tags=["tools"], dependencies=[Depends(local_only)])


class CatalogueBody(BaseModel):
    executors: list[dict[str, Any]] = Field(
        description="the planner's executors, each as a tool: a free-form step of it"
    )
    tools: list[dict[str, Any]] = Field(
        description="the tools: name, description, input_schema, returns, effect, executor, "
        "source (offer:<agent>, mcp:<server>, file:<path>, a2a:<agent>); with `request`, "
        "only those the planner would see, closest first, each with its `score`"
    )


@router.get("/v1/tools", response_model=CatalogueBody, responses=error_responses(401, 503))
async def tools(
    replica: ReplicaDep,
    tenant: TenantDep,
    request: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="a request: only the tools the planner would show for it, ranked",
        ),
    ] = None,
) -> CatalogueBody:
    """The action catalogue the planner plans with for you: executors and tools."""
    services = replica.services
    catalogue = await services.tools.catalogue(tenant)
    return CatalogueBody(**catalogue_view(catalogue, request, services.settings.planner_max_tools))
