"""Settings of the HTTP layer (`ServerSettings`), read from the environment.

Configuration besides `graph.config.Settings`, read here only (by `ServerSettings.from_env`,
in `serve()` and in `create_app` when no settings are given; how variables are read, and
what an error says: `graph.envsettings`):

    CPA_API_KEYS          "tenant:key,tenant:key"  (or CPA_API_KEYS_FILE: one tenant:key a line)
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
                          about this long (`api.leases`)
    CPA_RUNS_PER_REPLICA  conversations one replica runs at once (default 32); more wait
                          on the job stream for any replica with a free slot
    CPA_SERVER_SERVICES   "module:function" returning the graph's `Services` for given
                          `Settings`: a hook for tests and embedders (scripted models, extra
                          executors); unset, `graph.builder.make_services` is used.

Every number must be positive. Keys are kept as sha256 digests only, and an error about them
names the entry by its position, never its text.

Without any API key the server is open to one tenant, `local`, and only to this machine:
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

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

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

    # sha256(key) -> tenant: keys are compared by digest, never kept in plain text here.
    # From the environment, `CPA_API_KEYS` and the file `CPA_API_KEYS_FILE` name them as
    # `tenant:key` entries (`_digest_api_keys`).
    api_keys: Mapping[str, str] = Field(default_factory=dict)
    api_keys_file: Path | None = None
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
        return not self.api_keys

    @model_validator(mode="before")
    @classmethod
    def _digest_api_keys(cls, data: Any) -> Any:
        """`tenant:key` entries (the `CPA_API_KEYS` text, the file's lines) to digests.

        Digests given as a mapping are kept as they are, with the file's added.
        """
        if not isinstance(data, dict):
            return data
        listed, path = data.get("api_keys"), data.get("api_keys_file")
        if not isinstance(listed, str) and not path:
            return data
        keys = dict(listed) if isinstance(listed, Mapping) else {}
        pairs = parse_keys(listed.split(","), "CPA_API_KEYS") if isinstance(listed, str) else []
        if path:
            pairs += _keys_in_file(Path(path))
        for tenant, key in pairs:
            key_digest = digest(key)
            if keys.get(key_digest, tenant) != tenant:
                raise ServerConfigError("the same API key is given to two tenants")
            keys[key_digest] = tenant
        return {**data, "api_keys": keys}


def _keys_in_file(path: Path) -> list[tuple[str, str]]:
    """The `tenant:key` lines of a keys file; blank lines and `#` comments skipped."""
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ServerConfigError(f"CPA_API_KEYS_FILE {path}: {exc.strerror}") from None
    return parse_keys(
        [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")],
        f"CPA_API_KEYS_FILE {path}",
    )


def parse_keys(entries: list[str], source: str) -> list[tuple[str, str]]:
    """(tenant, key) pairs from `tenant:key` entries; `source` names them in errors.

    An error names the entry by its position, never by its text: a mistyped entry may be a
    key (or hold one), and error messages end up in logs and terminals.
    """
    pairs = []
    for number, entry in enumerate(entries, start=1):
        tenant, sep, key = entry.strip().partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not key or not tenant:
            raise ServerConfigError(
                f"{source}: entry {number} is not tenant:key (a tenant name, ':', the key)"
            )
        if not _TENANT.match(tenant):
            raise ServerConfigError(
                f"{source}: entry {number}: the tenant name must be 1-64 letters, digits, "
                "'.', '_' or '-' (is the key first?)"
            )
        pairs.append((tenant, key))
    return pairs


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
