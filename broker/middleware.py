"""Request metrics per route and the access log (middleware), and security headers on every
response (a hook)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from broker.request_context import RequestInfo, begin, end, new_id

access = logging.getLogger("vouch.access")
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
    """Count requests by route template and status, time them, log each (when the access
    log is on) and answer each with its request id (`X-Request-Id`)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        info, context = begin()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                message["headers"] = [*headers, (b"x-request-id", info.id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_observed)
        finally:
            end(context)
            _record(scope, status, time.perf_counter() - started, info)

    return middleware


def _record(scope: HTTPScope, status: int, seconds: float, info: RequestInfo) -> None:
    services: Any = getattr(scope["app"].state, "services", None)
    if services is None:
        return
    route = next(iter(scope["route_handler"].paths), "?")
    services.metrics.requests.labels(route, str(status)).inc()
    services.metrics.latency.labels(route).observe(seconds)
    if services.settings.access_log:
        _log_access(scope, route, status, seconds, info)


async def unrouted(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook: the answers no route handler gave (an unknown path, a
    method the path does not have) get a request id and an access log line too; they are
    not counted in the metrics (their paths are anyone's choice)."""
    if message["type"] != "http.response.start" or scope.get("route_handler") is not None:
        return
    services: Any = getattr(scope["app"].state, "services", None)
    info = RequestInfo(new_id())
    message["headers"] = [*message.get("headers", []), (b"x-request-id", info.id.encode())]
    if services is not None and services.settings.access_log and scope["type"] == ScopeType.HTTP:
        _log_access(scope, None, message["status"], None, info)


def _log_access(
    scope: HTTPScope, route: str | None, status: int, seconds: float | None, info: RequestInfo
) -> None:
    if not access.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    # The route template, never the path or query (a client may put anything there),
    # and no header: what a token could hide in stays out of the log.
    access.info(
        "%s %s %d",
        scope["method"],
        route or "-",
        status,
        extra={
            "method": scope["method"],
            "route": route,
            "status": status,
            "ms": round(seconds * 1000, 2) if seconds is not None else None,
            "request": info.id,
            "principal": info.principal,
            "client": client[0] if client else None,
            "pid": os.getpid(),
        },
    )
