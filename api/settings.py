"""Settings of the HTTP layer (`ServerSettings`), read from the environment.

Configuration besides `graph.config.Settings`, read here only (by `ServerSettings.from_env`,
in `serve()` and in `create_app` when no settings are given; how variables are read, and
what an error says: `graph.envsettings`):

    CPA_API_KEYS          entries `tenant:key` (tenant-wide) or
                          `tenant=T;principal=P;scopes=S+S;key=K` (`api.principals`), comma-
                          separated (or CPA_API_KEYS_FILE: one entry a line)
    CPA_MANAGED_KEYS      `true`: also the keys of `cpa-planner keys create` (`api.keystore`)
    CPA_JWT_JWKS, CPA_JWT_ISSUER, CPA_JWT_AUDIENCE, CPA_JWT_TENANT_CLAIM, CPA_JWT_TENANT,
    CPA_JWT_PRINCIPAL_CLAIM, CPA_JWT_PRINCIPAL_PREFIX, CPA_JWT_LEEWAY_S
                          bearer JWTs of an identity provider (`api.tokens`)
    CPA_RATE_LIMIT_PER_MIN, CPA_MAX_STORED_BYTES_PER_TENANT
                          per-tenant limits, off unless set (`api.limits`)
    CPA_PUBLIC_URL        the URL clients reach the server at (the A2A agent card's)
    CPA_HEADER_TIMEOUT_S  a request's headers must arrive within it (default 10,
                          `api.http_timeouts`); CPA_BODY_TIMEOUT_S its body (default 30)
    CPA_MAX_BODY_BYTES    request body limit, default 262144 (256 KiB)
    CPA_HOST, CPA_PORT    where `serve()` binds (default 127.0.0.1:8000)
    CPA_WORKERS           server processes `serve()` starts on that port, each a replica
                          (default 1; `--workers` overrides it)
    CPA_SSE_KEEPALIVE_S   seconds between SSE keep-alive comments (default 15)
    CPA_SSE_REFRESH_S     seconds between a conversation's re-reads of Redis for its event
                          stream besides the pub/sub notices (default 30)
    CPA_MAX_WAIT_S        the longest `?wait=` a request may ask for (default 60)
    CPA_MAX_RUNNING_PER_TENANT   conversations of one tenant running at once (default 64);
                          a new one beyond it is refused with 429 and Retry-After
    CPA_MAX_WAITING_PER_TENANT   conversations of one tenant waiting for an answer
                          (default 1000); a new one beyond it is refused with 429
    CPA_RETRY_AFTER_S     the Retry-After of a 429 for too many running (default 5)
    CPA_WAIT_EXPIRY_S     a conversation waiting longer than this for an answer ends failed,
                          code `expired` (default 604800, a week)
    CPA_LEASE_S           seconds a replica's claim on a conversation lives without being
                          renewed (default 10): a replica that dies is taken over after
                          about this long (`graph.storage.leases`)
    CPA_RUNS_PER_REPLICA  conversations one replica runs at once (default 32); more wait
                          on the job stream for any replica with a free slot
    CPA_SERVER_SERVICES   "module:function" returning the graph's `Services` for given
                          `Settings`: a hook for tests and embedders (scripted models, extra
                          executors); unset, `graph.builder.make_services` is used.

Every number must be positive. Keys are kept as sha256 digests only, and an error about them
names the entry by its position, never its text.

Without any credential configured (keys, managed keys, JWTs) the server is open to one
tenant, `local`, and only to this machine:
it refuses to listen on an address other machines can reach, and requests whose `Host` or
`Origin` is not a loopback name (`api.local_mode`).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from api.principals import (
    ALL_SCOPES,
    PERSON_SCOPES,
    Principal,
    PrincipalError,
    check_principal_id,
    check_tenant,
    parse_scopes,
)
from graph.config import Settings
from graph.envsettings import EnvSettings
from graph.services import Services

DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_WAIT_EXPIRY_S = 7 * 24 * 3600
DEFAULT_LEASE_S = 10.0
SERVICES_FACTORY_ENV = "CPA_SERVER_SERVICES"
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class ServerConfigError(ValueError):
    """A server setting is unusable; the message names the variable."""


class ServerSettings(EnvSettings):
    """Settings of the HTTP layer only (the graph's are `graph.config.Settings`)."""

    config_error: ClassVar[type[ValueError]] = ServerConfigError

    # sha256(key) -> the principal it names: keys are compared by digest, never kept in plain
    # text here. From the environment, `CPA_API_KEYS` and the file `CPA_API_KEYS_FILE` name
    # them as `tenant:key` (tenant-wide) or `tenant=T;principal=P;scopes=S+S;key=K` entries
    # (`_digest_api_keys`); a tenant name given as a value is a tenant-wide key.
    api_keys: Mapping[str, Principal] = Field(default_factory=dict)
    api_keys_file: Path | None = None
    # Keys made with `cpa-planner keys create`, kept hashed in the conversations' Redis.
    managed_keys: bool = False
    # Bearer tokens (JWT) from an identity provider (`api.tokens`): where its keys are
    # (a JWKS URL, or a file), whom the tokens must come from and be meant for.
    jwt_jwks: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_tenant_claim: str = "tenant"
    jwt_tenant: str | None = None  # every token's tenant, when the tokens carry none
    jwt_principal_claim: str = "sub"
    jwt_principal_prefix: str = "user:"
    jwt_leeway_s: NonNegativeFloat = 30.0
    # Requests per minute one tenant may make (429 with Retry-After beyond); None: no limit.
    rate_limit_per_min: PositiveInt | None = None
    # Bytes one tenant's conversations may keep in Redis; a new request beyond is 429.
    max_stored_bytes_per_tenant: PositiveInt | None = None
    # The URL clients reach this server at (the A2A agent card's); unset: from the request.
    public_url: str | None = None
    # Seconds a client may take to send a request's headers (uvicorn's keep-alive and
    # h11 timeouts) and its body (`api.dependencies.read_body`).
    header_timeout_s: PositiveFloat = 10.0
    body_timeout_s: PositiveFloat = 30.0
    max_body_bytes: PositiveInt = DEFAULT_MAX_BODY_BYTES
    host: str = "127.0.0.1"
    port: PositiveInt = 8000
    workers: PositiveInt = 1
    sse_keepalive_s: PositiveFloat = 15.0
    # How often a conversation's event feed re-reads Redis without being told to (a safety
    # net under the pub/sub notices, per conversation, not per listener).
    sse_refresh_s: PositiveFloat = 30.0
    # The longest `?wait=` a request may ask for.
    max_wait_s: PositiveFloat = 60.0
    max_running_per_tenant: PositiveInt = 64
    max_waiting_per_tenant: PositiveInt = 1000
    retry_after_s: PositiveInt = 5
    wait_expiry_s: PositiveFloat = DEFAULT_WAIT_EXPIRY_S
    lease_s: PositiveFloat = DEFAULT_LEASE_S
    runs_per_replica: PositiveInt = 32
    services_factory: str | None = Field(None, validation_alias=SERVICES_FACTORY_ENV)

    @property
    def open_access(self) -> bool:
        """No credential of any kind is configured: local mode (`api.local_mode`)."""
        return not self.api_keys and not self.managed_keys and not self.jwt_jwks

    @property
    def configured_tenants(self) -> set[str]:
        """The tenants the settings name (metric labels); the JWT's fixed tenant too."""
        tenants = {p.tenant for p in self.api_keys.values()}
        if self.jwt_tenant:
            tenants.add(self.jwt_tenant)
        return tenants

    @model_validator(mode="before")
    @classmethod
    def _digest_api_keys(cls, data: Any) -> Any:
        """Key entries (the `CPA_API_KEYS` text, the file's lines) to digests.

        Digests given as a mapping are kept as they are (a tenant name as the value: a
        tenant-wide key), with the file's added.
        """
        if not isinstance(data, dict):
            return data
        listed, path = data.get("api_keys"), data.get("api_keys_file")
        if not isinstance(listed, str | Mapping) and not path:
            return data
        keys: dict[str, Any] = {}
        if isinstance(listed, Mapping):
            for key_digest, who in listed.items():
                keys[key_digest] = Principal.tenant_wide(who) if isinstance(who, str) else who
        pairs = parse_keys(listed.split(","), "CPA_API_KEYS") if isinstance(listed, str) else []
        if path:
            pairs += _keys_in_file(Path(path))
        for principal, key in pairs:
            key_digest = digest(key)
            if keys.get(key_digest, principal) != principal:
                raise ServerConfigError("the same API key is given to two tenants or principals")
            keys[key_digest] = principal
        return {**data, "api_keys": keys}

    @model_validator(mode="after")
    def _check_jwt(self) -> ServerSettings:
        if self.jwt_jwks and not (self.jwt_issuer and self.jwt_audience):
            raise ServerConfigError(
                "CPA_JWT_JWKS is set: set CPA_JWT_ISSUER and CPA_JWT_AUDIENCE too (a token "
                "is taken only from that issuer, and only if it is meant for this server)"
            )
        if self.jwt_tenant is not None:
            try:
                check_tenant(self.jwt_tenant)
            except PrincipalError as exc:
                raise ServerConfigError(f"CPA_JWT_TENANT: {exc}") from None
        return self


def _keys_in_file(path: Path) -> list[tuple[Principal, str]]:
    """The key entries of a keys file, one a line; blank lines and `#` comments skipped."""
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ServerConfigError(f"CPA_API_KEYS_FILE {path}: {exc.strerror}") from None
    return parse_keys(
        [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")],
        f"CPA_API_KEYS_FILE {path}",
    )


_FIELDS = ("tenant", "principal", "scopes", "key")


def parse_keys(entries: list[str], source: str) -> list[tuple[Principal, str]]:
    """(principal, key) pairs from key entries; `source` names them in errors.

    `tenant:key` is a tenant-wide key (any sender, every scope);
    `tenant=T;principal=P;scopes=S+S;key=K` names who speaks and what it may do (scopes
    left out: a person's, `request+answer+read`; principal left out: anyone of T).

    An error names the entry by its position, never by its text: a mistyped entry may be a
    key (or hold one), and error messages end up in logs and terminals.
    """
    pairs = []
    for number, entry in enumerate(entries, start=1):
        text = entry.strip()
        if text.split("=", 1)[0].strip() in _FIELDS and "=" in text:
            pairs.append(_parse_named(text, f"{source}: entry {number}"))
            continue
        tenant, sep, key = text.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not key or not tenant:
            raise ServerConfigError(
                f"{source}: entry {number} is not tenant:key (a tenant name, ':', the key) "
                "nor tenant=T;principal=P;scopes=S+S;key=K"
            )
        if not _TENANT.match(tenant):
            raise ServerConfigError(
                f"{source}: entry {number}: the tenant name must be 1-64 letters, digits, "
                "'.', '_' or '-' (is the key first?)"
            )
        pairs.append((Principal.tenant_wide(tenant), key))
    return pairs


def _parse_named(text: str, where: str) -> tuple[Principal, str]:
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in _FIELDS or name in fields:
            raise ServerConfigError(
                f"{where}: expected tenant=T;principal=P;scopes=S+S;key=K, each once "
                "(';' between them)"
            )
        fields[name] = value.strip()
    if not fields.get("tenant") or not fields.get("key"):
        raise ServerConfigError(f"{where}: tenant= and key= are required")
    try:
        tenant = check_tenant(fields["tenant"])
        who = fields.get("principal") or None
        if who is not None:
            check_principal_id(who)
        if "scopes" in fields:
            scopes = parse_scopes(fields["scopes"])
        else:
            scopes = PERSON_SCOPES if who is not None else ALL_SCOPES
    except PrincipalError as exc:
        raise ServerConfigError(f"{where}: {exc}") from None
    return Principal(tenant, who, scopes), fields["key"]


def replica_name() -> str:
    """This process's name among the replicas: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def digest(text: str) -> str:
    """sha256 of `text`, hex: how API keys are kept and free-text ids become key names."""
    return hashlib.sha256(text.encode()).hexdigest()


def load_services(settings: Settings, factory: str | None) -> Services:
    """The graph's services: `make_services(settings)`, or the `module:function` hook."""
    if not factory:
        from graph.builder import make_services

        return make_services(settings)
    module_name, _, attr = factory.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ServerConfigError(f"{SERVICES_FACTORY_ENV}={factory!r}: {exc}") from None
    services = function(settings)
    if not isinstance(services, Services):
        raise ServerConfigError(f"{SERVICES_FACTORY_ENV}={factory!r} did not return Services")
    return services
