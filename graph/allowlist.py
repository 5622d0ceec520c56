"""URL allow-lists: is a URL at or below one of the allowed prefixes, as a server reads it?

The `http` executor, A2A agents and MCP servers reached over HTTP are all held to one. The
allow-list is checked on the URL as the server will read it, and that very URL is the one
sent (`normalise`): scheme and host in lower case, the default port written out,
percent-escapes of unreserved characters decoded (`%2e` is `.`) and the others in upper
case, then `.` and `..` segments resolved, so `/api/../admin` and `/api/%2e%2e/admin` are
`/admin`. A port that is not plain digits (`+18999`), an encoded `/` or `\\` in the path,
or a scheme other than http(s) is refused (`BadUrlError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PORT = re.compile(r"[0-9]{1,5}")


class BadUrlError(ValueError):
    """A URL that is never called, whatever the allow-list says."""


@dataclass(frozen=True)
class NormalisedUrl:
    scheme: str
    host: str
    port: int
    path: str
    query: str
    userinfo: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.userinfo}@" if self.userinfo else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{user}{host}:{self.port}{self.path}{query}"

    def under(self, prefix: NormalisedUrl) -> bool:
        """Whether this URL is the prefix's or below it, compared part by part."""
        if (self.scheme, self.host, self.port) != (prefix.scheme, prefix.host, prefix.port):
            return False
        base = prefix.path.rstrip("/")
        return not base or self.path == base or self.path.startswith(base + "/")


def normalise(url: str) -> NormalisedUrl:
    """The URL as a server reads it (see the module docstring); BadUrlError if unusable."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise BadUrlError(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadUrlError(f"only http and https URLs are called, not {scheme or 'no scheme'!r}")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    host, port = _host_port(hostport, DEFAULT_PORTS[scheme])
    return NormalisedUrl(scheme, host, port, _path(parts.path), parts.query, userinfo)


def _host_port(hostport: str, default: int) -> tuple[str, int]:
    if hostport.startswith("["):  # an IPv6 literal
        host, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise BadUrlError(f"cannot read the host {hostport!r}")
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
    host = host.lower().rstrip(".")
    if not host:
        raise BadUrlError("the URL names no host")
    if port_text is None or port_text == "":
        return host, default
    # Plain ASCII digits only: `+18999`, `0x50` or other scripts' digits are refused.
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise BadUrlError(f"the port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _path(raw: str) -> str:
    def unescape(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if _UNRESERVED.fullmatch(char) else f"%{match.group(1).upper()}"

    path = _ESCAPE.sub(unescape, raw)
    if "\\" in path or "%2F" in path or "%5C" in path:
        raise BadUrlError("an encoded '/' or a '\\' in the path is refused")
    return _remove_dot_segments(path or "/")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986, 5.2.4: resolve `.` and `..` segments."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    resolved = "/" + "/".join(output)
    if path.endswith(("/.", "/..")) and not resolved.endswith("/"):
        resolved += "/"
    return resolved


def allowed(url: str, allowlist: tuple[str, ...]) -> bool:
    """True if the normalised URL is at or below an allow-listed prefix.

    Comparing scheme, host and port exactly (not as text) keeps
    `https://api.example.com.evil.net` out of an allow-list of `https://api.example.com`.
    """
    try:
        target = normalise(url)
    except BadUrlError:
        return False
    for entry in allowlist:
        try:
            prefix = normalise(entry)
        except BadUrlError:
            continue  # an unusable entry admits nothing
        if target.under(prefix):
            return True
    return False
