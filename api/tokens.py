"""Bearer tokens from an identity provider: OAuth2 / OpenID Connect access tokens (JWT).

With `CPA_JWT_JWKS` set (the provider's JWKS URL, or a JWKS file), a bearer credential
that looks like a JWT is verified with PyJWT (`jwt.PyJWKClient`, `jwt.decode`):

- signed by a key of the JWKS (asymmetric algorithms only: RS*, PS*, ES*, EdDSA; never
  `none` or a shared secret), the key chosen by the token's `kid`;
- `iss` is `CPA_JWT_ISSUER`, `aud` holds `CPA_JWT_AUDIENCE`, `exp` is in the future (and
  `nbf`, `iat` not), with `CPA_JWT_LEEWAY_S` (30 s) for clocks that differ;
- claims name the principal: the tenant (claim `CPA_JWT_TENANT_CLAIM`, default `tenant`,
  or every token's tenant `CPA_JWT_TENANT`), who it is (`CPA_JWT_PRINCIPAL_PREFIX` +
  claim `CPA_JWT_PRINCIPAL_CLAIM`: `user:` + `sub` by default), and the scopes (the OAuth2
  `scope` claim, space-separated, or `scp`, a list; names that are not ours are ignored;
  none given: a person's, `request answer read`).

Keys rotate without a restart: the JWKS is cached for five minutes, and a token whose `kid`
is not in the cached set makes it fetched again at once (at most every `refetch_s`). A
refused token is 401 saying why (expired, wrong audience, unknown key...), never echoing
the token.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from api.auth import unauthorized
from api.principals import (
    PERSON_SCOPES,
    Principal,
    PrincipalError,
    Scope,
    check_principal_id,
    check_tenant,
)
from api.settings import ServerSettings

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
_KNOWN_SCOPES = {s.value for s in Scope}


class FileKeys:
    """A JWKS kept in a file, read again when a token names a key it does not list (a
    rotation writes the file anew); `PyJWKClient` reads URLs only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: jwt.PyJWKSet | None = None
        self._lock = threading.Lock()

    def _load(self) -> jwt.PyJWKSet:
        try:
            return jwt.PyJWKSet.from_json(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise jwt.PyJWKClientConnectionError(f"{self.path}: {exc.strerror}") from None

    def get_signing_key_from_jwt(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            for fresh in (False, True):
                if fresh or self._keys is None:
                    self._keys = self._load()
                for key in self._keys.keys:
                    if key.key_id == kid:
                        return key
        raise jwt.PyJWKClientError(f"no key {kid!r} in {self.path}")


def key_source(location: str, *, refetch_s: float, timeout_s: float) -> Any:
    """Where the signing keys come from: a JWKS URL (PyJWKClient) or a JWKS file."""
    if urlsplit(location).scheme in ("http", "https"):
        return jwt.PyJWKClient(
            location,
            cache_jwk_set=True,
            lifespan=300,
            timeout=timeout_s,
            cooldown_duration=refetch_s,
        )
    return FileKeys(Path(location).expanduser())


class TokenVerifier:
    """Verifies bearer JWTs and maps their claims to a principal (see the module)."""

    def __init__(
        self,
        jwks: str,
        *,
        issuer: str,
        audience: str,
        tenant_claim: str = "tenant",
        tenant: str | None = None,
        principal_claim: str = "sub",
        principal_prefix: str = "user:",
        leeway_s: float = 30.0,
        refetch_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.client = key_source(jwks, refetch_s=refetch_s, timeout_s=timeout_s)
        self.issuer = issuer
        self.audience = audience
        self.tenant_claim = tenant_claim
        self.tenant = tenant
        self.principal_claim = principal_claim
        self.principal_prefix = principal_prefix
        self.leeway_s = leeway_s

    @classmethod
    def from_settings(cls, config: ServerSettings) -> TokenVerifier | None:
        if not config.jwt_jwks:
            return None
        assert config.jwt_issuer and config.jwt_audience  # ServerSettings checks it
        return cls(
            config.jwt_jwks,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            tenant_claim=config.jwt_tenant_claim,
            tenant=config.jwt_tenant,
            principal_claim=config.jwt_principal_claim,
            principal_prefix=config.jwt_principal_prefix,
            leeway_s=config.jwt_leeway_s,
        )

    @staticmethod
    def looks_like_token(credential: str) -> bool:
        return credential.count(".") == 2 and credential.startswith("ey")

    async def principal(self, token: str) -> Principal:
        """The token's principal; 401 saying why if it is refused."""
        return await asyncio.to_thread(self.verify, token)

    def verify(self, token: str) -> Principal:
        try:
            key = self.client.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("the token is not meant for this server (aud)") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("the token comes from another issuer (iss)") from None
        except jwt.PyJWKClientConnectionError:
            raise unauthorized("the identity provider's keys cannot be fetched now") from None
        except jwt.PyJWKClientError:
            raise unauthorized("the token is signed by a key the provider does not list") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise unauthorized(f"the token is refused: {type(exc).__name__}") from None
        return self.principal_of(claims)

    def principal_of(self, claims: dict[str, Any]) -> Principal:
        tenant = self.tenant or claims.get(self.tenant_claim)
        who = claims.get(self.principal_claim)
        if not isinstance(tenant, str) or not isinstance(who, str):
            raise unauthorized(
                f"the token names no tenant ({self.tenant_claim}) or principal "
                f"({self.principal_claim})"
            )
        try:
            principal_id = check_principal_id(f"{self.principal_prefix}{who}")
            check_tenant(tenant)
        except PrincipalError as exc:
            raise unauthorized(f"the token's claims cannot name a principal: {exc}") from None
        return Principal(tenant, principal_id, self._scopes(claims))

    @staticmethod
    def _scopes(claims: dict[str, Any]) -> frozenset[Scope]:
        raw = claims.get("scope", claims.get("scp"))
        if raw is None:
            return PERSON_SCOPES
        names = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
        return frozenset(Scope(n) for n in names if n in _KNOWN_SCOPES)
