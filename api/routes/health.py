"""`GET /healthz` (liveness) and `GET /readyz` (readiness: Redis answers)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import TenantDep
from api.dependencies import ReplicaDep
from api.errors import error_responses
from api.local_mode import local_only
from api.models import Health, Ready

router = APIRouter(tags=["health"], dependencies=[Depends(local_only)])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers (no key needed, nothing else checked)."""
    return Health()


@router.get("/readyz", response_model=Ready, responses=error_responses(401, 503))
async def readyz(replica: ReplicaDep, _tenant: TenantDep) -> Ready:
    """Readiness: Redis answers a PING (fails fast, 503, while it does not)."""
    await replica.saver.aping()
    return Ready()
