"""The caller's tenant, from `Authorization: Bearer <key>` (docs/http.md).

Keys map to tenants (`CPA_API_KEYS`); a tenant never sees another tenant's conversations.
Without any key configured, every caller is the one tenant `local`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError, starting
from api.settings import ServerSettings, digest

LOCAL_TENANT = "local"

bearer = HTTPBearer(auto_error=False, description="an API key from CPA_API_KEYS")


def current_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The caller's tenant, from `Authorization: Bearer <key>`."""
    config: ServerSettings | None = getattr(request.app.state, "server_settings", None)
    if config is None:
        raise starting()
    if config.open_access:
        return LOCAL_TENANT
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>", None, challenge)
    tenant = config.api_keys.get(digest(credentials.credentials))
    if tenant is None:
        raise ApiError(401, "unauthorized", "unknown API key", None, challenge)
    return tenant


TenantDep = Annotated[str, Depends(current_tenant)]
