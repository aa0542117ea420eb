"""The HTTP server of `vouch-broker serve`: uvicorn's httptools protocol with a header deadline.

uvicorn times out idle kept-alive connections (`timeout_keep_alive`) but nothing else: a
client that connects and sends nothing, or sends its headers a byte at a time, holds its
connection (a file descriptor, a parser, a slot under any concurrency limit) for as long as
it likes (slowloris). Here each request's line and headers must arrive within
`http_header_timeout_s` of the connection opening, or of a later request's first byte on a
kept-alive connection; otherwise the answer is 408 and the connection is closed. Bodies are
not covered: they are at most 64 KiB and a handler that reads one has already begun.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT_S = 10.0
_TOO_SLOW = b"request headers took too long"
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n"
    b"\r\n%s" % (len(_TOO_SLOW), _TOO_SLOW)
)


class ServeConfig(uvicorn.Config):
    """uvicorn's Config plus the header deadline (pickled whole into each worker process)."""

    def __init__(self, app: Any, *, header_timeout_s: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout_s = header_timeout_s


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools with a deadline for each request's head (`ServeConfig.header_timeout_s`)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout_s = (
            config.header_timeout_s if isinstance(config, ServeConfig) else DEFAULT_HEADER_TIMEOUT_S
        )
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is cut off too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:  # a later request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()


def stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker, `kill`) stops the server as Ctrl-C does: gracefully, then
    through the caller's cleanup (the dev stack's children, the workers' metrics directory).

    uvicorn shuts down on SIGTERM and then raises the signal again with the handler it found;
    Python's default for SIGTERM ends the process on the spot, skipping every `finally`.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
