"""The agent exchange (``POST /v1/credentials/<provider>``) served in front of Litestar's router.

On a cache hit the exchange itself (cached verification, one Redis round trip, the cached
credentials) costs less than Litestar's machinery around it: routing, a `Request`, dependency
injection, the body through the signature model, a `Response` object, about 60 us per
request. This front does for the agent exchange only what that machinery does for it, and
leaves everything else to Litestar:

- it takes a request only if it is exactly ``POST /v1/credentials/<provider>`` (no root path,
  a valid Host, the route Litestar would pick) with a body of at most 64 KiB that is empty or
  decodes as `ExchangeRequest` under msgspec's strict rules. Anything else (a body Litestar
  would refuse with its 400 or 413, or might coerce) goes to Litestar untouched, body
  included, before anything has been done;
- it answers with the same bytes as the Litestar route (status, headers in the same order,
  body): the same route handler in the scope, the `observe` middleware (request id,
  metrics, access log) and the app's `before_send` hooks (security headers) as for every
  route, the handler's own header set and JSON encoding, and any exception answered by
  the route's exception handlers (broker/problems.py) as Litestar's exception middleware
  does. tests/integration/test_exchange_route.py compares the two, answer by answer.

A person's own exchange (``/self``) and every other route stay Litestar's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar import Litestar, Request
from litestar._asgi.utils import is_valid_host
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.middleware._internal.exceptions.middleware import get_exception_handler
from litestar.serialization import get_serializer
from litestar.types import (
    ASGIApp,
    ExceptionHandlersMap,
    HTTPScope,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from broker.middleware import observe
from broker.routes.credentials import ExchangeRequest, one_proof, response_headers, token_of

_DECODE = msgspec.json.Decoder(ExchangeRequest | None)
_ROUTE = "vouch.exchange_route"
"""Scope key: what `ExchangeRoutes` parsed, for the handler inside `observe`."""


@dataclass(frozen=True)
class _Route:
    provider: str
    handler: HTTPRouteHandler
    """Litestar's handler for the path: the scope names it, as Litestar's router would."""
    path_template: str
    exception_handlers: ExceptionHandlersMap
    type_encoders: Any
    serializer: Callable[[Any], Any]


@dataclass(frozen=True)
class _Parsed:
    route: _Route
    body: ExchangeRequest
    authorization: str
    proofs: list[str]


class ExchangeRoutes:
    """An ASGI app in front of Litestar's (`Litestar.asgi_handler`) for the agent exchanges."""

    def __init__(self, app: Litestar, providers: list[str], *, max_body_bytes: int) -> None:
        self.litestar: ASGIApp = app.asgi_handler
        """What every other request goes to: the app's own handler."""
        self.max_body_bytes = max_body_bytes
        self.routes: dict[str, _Route] = {}
        for provider in providers:
            path = f"/v1/credentials/{provider}"
            _, handler, _, _, template = app.asgi_router.handle_routing(path=path, method="POST")
            self.routes[path] = _Route(
                provider,
                cast(HTTPRouteHandler, handler),
                template,
                handler.resolve_exception_handlers(),
                handler.resolve_type_encoders(),
                get_serializer(handler.resolve_type_encoders()),
            )
        self._observed = observe(self._exchange)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST":
            route = None if scope.get("root_path") else self.routes.get(scope["path"])
        if route is None:
            await self.litestar(scope, receive, send)
            return
        parsed, received = await self._parse(route, cast(HTTPScope, scope), receive)
        if parsed is None:  # Litestar decides, as if nothing had been read
            await self.litestar(scope, _replay(received, receive), send)
            return
        scope["route_handler"] = route.handler
        scope["path_params"] = {}
        scope["path_template"] = route.path_template
        scope[_ROUTE] = parsed  # type: ignore[literal-required]
        await self._observed(scope, receive, send)

    async def _parse(
        self, route: _Route, scope: HTTPScope, receive: Receive
    ) -> tuple[_Parsed | None, list[ReceiveMessage]]:
        """The request's headers and body when they are ones this front answers; with the
        messages read so far (Litestar reads them again when it is not)."""
        authorization: str | None = None
        proofs: list[str] = []
        host_seen = False
        for raw_name, value in scope["headers"]:
            name = raw_name.lower()
            if name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"dpop":
                proofs.append(value.decode("latin-1"))
            elif name == b"host" and not host_seen:
                host_seen = True
                if not is_valid_host(value):
                    return None, []
            elif name == b"content-length" and not _fits(value, self.max_body_bytes):
                return None, []
        received: list[ReceiveMessage] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return None, received
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, received
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        try:
            body = _DECODE.decode(data) if data else None
        except (ValueError, RecursionError):  # msgspec's errors, bad UTF-8, deep nesting
            return None, received
        return _Parsed(route, body or ExchangeRequest(), authorization or "", proofs), received

    async def _exchange(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The route handler's work and answer (inside `observe`, as Litestar's route is)."""
        parsed = cast(_Parsed, scope[_ROUTE])  # type: ignore[literal-required]
        route = parsed.route
        try:
            exchange = scope["app"].state.services.exchanges[route.provider]
            creds = await exchange.exchange(
                token_of(parsed.authorization),
                proof=one_proof(parsed.proofs),
                models=parsed.body.models,
                duration_s=parsed.body.duration_s,
            )
            content = msgspec.json.encode(creds.process_document(), enc_hook=route.serializer)
            headers = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in response_headers(exchange).items()
            ]
        except Exception as exc:
            await _problem(route, scope, receive, send, exc)
            return
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})


async def _problem(
    route: _Route, scope: Scope, receive: Receive, send: Send, exc: Exception
) -> None:
    """The answer to `exc`, as Litestar's exception middleware gives it for the route."""
    handler = get_exception_handler(route.exception_handlers, exc)
    if handler is None:  # broker/problems.py handles every Exception; never reached
        raise exc
    request: Request[Any, Any, Any] = scope["app"].request_class(scope, receive, send)
    response = handler(request, exc)
    answer = response.to_asgi_response(app=None, request=request, type_encoders=route.type_encoders)
    await answer(scope, receive, send)


def _fits(content_length: bytes, limit: int) -> bool:
    """Whether a Content-Length header is a number within `limit` (else Litestar answers)."""
    return content_length.isdigit() and int(content_length) <= limit


def _replay(received: list[ReceiveMessage], receive: Receive) -> Receive:
    """`receive` with the messages already read given back first."""
    pending = list(received)

    async def replayed() -> ReceiveMessage:
        if pending:
            return pending.pop(0)
        return await receive()

    return cast(Receive, replayed)
