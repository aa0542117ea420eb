"""ASGI middleware: request metrics and security headers on every routed response."""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


def observe(app: ASGIApp) -> ASGIApp:
    """Count requests by route template and status, time them, add security headers."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        finally:
            _record(scope, status, time.perf_counter() - started)

    return middleware


def _record(scope: Scope, status: int, seconds: float) -> None:
    services: Any = getattr(scope["app"].state, "services", None)
    handler = scope.get("route_handler")
    if services is None or handler is None:
        return
    route = next(iter(handler.paths), "?")
    services.metrics.requests.labels(route, str(status)).inc()
    services.metrics.latency.labels(route).observe(seconds)
