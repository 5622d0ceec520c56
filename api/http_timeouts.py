"""uvicorn's HTTP protocol with a deadline for a request's headers.

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`), but a connection whose
client sends nothing, or sends its headers a byte at a time, stays open for ever: a few
thousand of them hold a replica's sockets and memory (slowloris). `cpa-planner serve` runs
uvicorn with these protocols (`protocol_class`): a connection must have sent a request's
complete headers within `CPA_HEADER_TIMEOUT_S` of being opened, or of its previous
response's end, or it is closed. (A body's deadline, `CPA_BODY_TIMEOUT_S`, is kept where
bodies are read, `api.dependencies.read_body`.) Requests under way (a long SSE stream) are not
affected.

The deadline is read from the environment once per process (each worker of
`serve --workers N` is a fresh process).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: uvicorn uses h11
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol: close a connection whose headers are late."""

    seconds: float | None = None  # None: read CPA_HEADER_TIMEOUT_S on first use
    _header_timer: asyncio.TimerHandle | None = None
    # From the protocol class this is mixed into:
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    @classmethod
    def deadline(cls) -> float:
        if HeaderDeadline.seconds is None:
            from api.settings import ServerSettings

            HeaderDeadline.seconds = ServerSettings.from_env().header_timeout_s
        return HeaderDeadline.seconds

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.deadline(), self._late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _late(self) -> None:
        self._header_timer = None
        waiting_for_headers = self.cycle is None or self.cycle.response_complete
        if waiting_for_headers and not self.transport.is_closing():
            self.transport.close()


class H11WithDeadline(HeaderDeadline, H11Protocol):
    pass


if HttpToolsProtocol is not None:

    class HttpToolsWithDeadline(HeaderDeadline, HttpToolsProtocol):
        pass

    protocol_class: type = HttpToolsWithDeadline
else:
    protocol_class = H11WithDeadline
