"""The caller's principal, from `Authorization: Bearer <credential>` (docs/http.md).

A credential is looked up in this order, and the first that knows it names the principal
(`api.principals`): the keys of `CPA_API_KEYS` / `CPA_API_KEYS_FILE` (by sha256 digest);
a JWT from the configured identity provider (`api.tokens`, when `CPA_JWT_JWKS` is set);
a managed key (`api.keystore`, when `CPA_MANAGED_KEYS` is on). None knows it: 401.

Without any credential configured, every caller is the tenant-wide principal of the one
tenant `local` (and only this machine is served, `api.local_mode`).

Routes depend on `Caller(scope)`: the principal, after checking that it has the scope
(403 otherwise), and that its tenant is within its request rate (`api.limits`, 429).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError, starting
from api.principals import Principal, Scope, require
from api.settings import ServerSettings, digest

LOCAL_TENANT = "local"
LOCAL = Principal.tenant_wide(LOCAL_TENANT)

bearer = HTTPBearer(
    auto_error=False,
    description="an API key (CPA_API_KEYS, `cpa-planner keys create`) or an identity "
    "provider's token (JWT)",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, None, _CHALLENGE)


def _settings(request: Request) -> ServerSettings:
    config: ServerSettings | None = getattr(request.app.state, "server_settings", None)
    if config is None:
        raise starting()
    return config


async def resolve(request: Request, credential: str | None) -> Principal:
    """The principal a credential names (401 if none does)."""
    config = _settings(request)
    if config.open_access:
        return LOCAL
    if not credential:
        raise unauthorized("send Authorization: Bearer <API key or token>")
    known = config.api_keys.get(digest(credential))
    if known is not None:
        return known
    tokens = getattr(request.app.state, "tokens", None)
    if tokens is not None and tokens.looks_like_token(credential):
        return cast(Principal, await tokens.principal(credential))  # 401 saying why if refused
    replica = getattr(request.app.state, "replica", None)
    if config.managed_keys:
        if replica is None:
            raise starting()
        found = await replica.keystore.lookup(credential)
        if found is not None:
            return cast(Principal, found)
    raise unauthorized("unknown API key")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller's principal, without a scope check or rate limit."""
    principal = await resolve(request, credentials.credentials if credentials else None)
    request.state.cpa_principal = principal
    return principal


def Caller(scope: Scope | None, *, limited: bool = True) -> Any:
    """A dependency: the caller's principal, which must have `scope` (None: any), its
    tenant within its rate limit unless `limited` is False."""

    async def caller(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        if scope is not None:
            require(principal, scope, _DOING.get(scope, scope.value))
        if limited:
            await check_rate(request, principal)
        return principal

    return Depends(caller)


_DOING = {
    Scope.READ: "read the tenant's conversations",
    Scope.REQUEST: "open conversations",
    Scope.METRICS: "read the metrics",
}


async def check_rate(request: Request, principal: Principal) -> None:
    """429 with Retry-After if the tenant is over CPA_RATE_LIMIT_PER_MIN."""
    replica = getattr(request.app.state, "replica", None)
    limits = getattr(replica, "limits", None)
    if limits is not None:
        await limits.check_rate(principal.tenant)


Reader = Annotated[Principal, Caller(Scope.READ)]
Anyone = Annotated[Principal, Caller(None)]
# The LAM endpoint checks scopes per message and rates per kind (answers are not limited).
Speaker = Annotated[Principal, Depends(current_principal)]


async def _reader_tenant(principal: Reader) -> str:
    return principal.tenant


# The tenant of a caller that may read (most routes need no more than that).
TenantDep = Annotated[str, Depends(_reader_tenant)]
