"""Request metrics per route (middleware) and security headers on every response (a hook)."""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


async def security_headers(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook: runs for every response, the router's 404 and 405 too.

    Answers carry tokens and credentials, so nothing may cache one unless its handler says
    otherwise (discovery documents do). Likewise nothing may load or run anything unless its
    handler sets a policy of its own (the schema viewer does). Async on purpose: Litestar runs
    a sync hook in a worker thread, once per ASGI message.
    """
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", []))
    names = {name.lower() for name, _ in headers}
    if b"cache-control" not in names:
        headers.append((b"cache-control", b"no-store"))
    if CSP[0] not in names:
        headers.append(CSP)
    message["headers"] = [*headers, *SECURITY_HEADERS]


def observe(app: ASGIApp) -> ASGIApp:
    """Count requests by route template and status and time them."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_observed)
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
