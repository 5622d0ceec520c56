"""Local mode: without API keys the server serves this machine's own programs, no one else.

Without keys anyone who can reach the server drives the desktop agent, so then:

- it refuses to listen on an address other machines can reach, however it is started
  (`cpa-planner serve`, `python server.py`, `uvicorn server:app --host 0.0.0.0`): the
  app's lifespan finds the address uvicorn is about to bind (`served_hosts`) and stops the
  start-up (`check_bind`);
- it answers only requests from a loopback address, whose `Host` is a loopback name
  (a DNS-rebinding page sends its own host name) and whose `Origin`, if any, is one too
  (a web page's cross-site request sends its own): 403 otherwise (`local_only`).

Loopback names: `localhost`, 127.0.0.0/8 and ::1, with any port.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from api.errors import ApiError, starting
from api.settings import ServerConfigError, ServerSettings

LOCAL_NAMES = frozenset({"localhost"})


def is_loopback(host: str | None) -> bool:
    """Whether a host name or IP address (no port) is this machine's loopback."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name.endswith("."):  # `localhost.` is the same name, written absolute
        name = name[:-1]
    if name in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return address.is_loopback


def _authority_host(authority: str) -> str | None:
    """The host of a `Host` header value (`name`, `name:port`, `[::1]:port`)."""
    try:
        parts = urlsplit(f"//{authority}")
        _ = parts.port  # a malformed port is a malformed header
    except ValueError:
        return None
    return parts.hostname


def _origin_host(origin: str) -> str | None:
    """The host of an `Origin` header value; None for `null` and anything not http(s)."""
    try:
        parts = urlsplit(origin)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    return parts.hostname


def refusal(request: Request) -> str | None:
    """Why a request may not be served in local mode, or None if it may."""
    client = request.client
    if client is not None and client.host and not is_loopback(client.host):
        return f"requests from {client.host} are refused"
    host = request.headers.get("host")
    if host is None or not is_loopback(_authority_host(host)):
        return "the Host header is not a loopback name (localhost, 127.0.0.1, ::1)"
    origin = request.headers.get("origin")
    if origin is not None and not is_loopback(_origin_host(origin)):
        return "requests from web pages of other sites are refused (Origin)"
    return None


async def local_only(request: Request) -> None:
    """Dependency of every route: with no API keys, serve this machine only (403)."""
    config: ServerSettings | None = getattr(request.app.state, "server_settings", None)
    if config is None:
        raise starting()
    if not config.open_access:
        return
    why = refusal(request)
    if why is not None:
        raise ApiError(
            403,
            "local_only",
            f"no API keys are configured, so this server serves only local programs: {why}; "
            "set CPA_API_KEYS to serve others",
        )


# Binding --------------------------------------------------------------------------------


def served_hosts() -> list[str] | None:
    """The addresses the uvicorn running this app listens on (or is about to); None if unknown.

    Called from the app's lifespan, which uvicorn runs before it binds: the lifespan runs
    inside uvicorn's `LifespanOn.main`, whose `config` says where it will listen. Found by
    walking the stack because nothing public tells: ASGI's lifespan scope names no address
    (only a request's scope has `server`), uvicorn hands the app nothing of its `Config`,
    and `uvicorn server:app --host ...` is started without our code around it. Not found
    (another server, another uvicorn): None, and each request is still checked alone.
    """
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        config = getattr(candidate, "config", None)
        if type(candidate).__module__.startswith("uvicorn.lifespan") and config is not None:
            return _config_hosts(config)
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _config_hosts(config: Any) -> list[str]:
    if getattr(config, "uds", None):
        return ["localhost"]  # a Unix socket: this machine only
    fd = getattr(config, "fd", None)
    if fd is not None:
        with socket.socket(fileno=os.dup(fd)) as sock:
            address = sock.getsockname()
        return [address[0]] if isinstance(address, tuple) else ["localhost"]
    return [str(config.host)]


def check_bind(config: ServerSettings, hosts: list[str] | None) -> None:
    """Refuse to serve on a non-loopback address without API keys (ServerConfigError)."""
    if not config.open_access or hosts is None:
        return
    public = [h for h in hosts if not is_loopback(h)]
    if public:
        raise ServerConfigError(
            f"no API keys configured (CPA_API_KEYS): refusing to serve on {', '.join(public)}, "
            "which other machines can reach; serve on 127.0.0.1 (the default), or set "
            "CPA_API_KEYS"
        )
