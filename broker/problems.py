"""The one mapping from errors to RFC 9457 problem+json responses at the HTTP edge."""

from __future__ import annotations

import functools
import logging
import traceback
from http import HTTPStatus
from typing import Any

from litestar import Response
from litestar.exceptions import HTTPException, ValidationException

from broker.auth import HttpRequest
from broker.dpop import WWW_AUTHENTICATE as DPOP_CHALLENGE
from broker.errors import (
    DpopProofInvalid,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    VouchError,
)
from broker.validation_messages import sentence

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("vouch.http")

_BY_STATUS: dict[int, type[VouchError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    404: NotFound,
    413: PayloadTooLarge,
    503: Unavailable,
}


def problem_response(request: HttpRequest, error: VouchError) -> Response[Any]:
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(error, DpopProofInvalid):
        headers["WWW-Authenticate"] = DPOP_CHALLENGE
    elif error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="vouch"'
    services = getattr(request.app.state, "services", None)  # absent before start-up ends
    if services is not None:
        services.metrics.problems.labels(error.slug).inc()
    return Response(
        content=error.problem(request.url.path),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def on_vouch_error(request: HttpRequest, exc: Exception) -> Response[Any]:
    assert isinstance(exc, VouchError)
    if exc.status >= 500:
        log.warning("request failed: %s: %s", exc.slug, exc.detail)
    return problem_response(request, exc)


def on_http_exception(request: HttpRequest, exc: Exception) -> Response[Any]:
    """Litestar's own errors (routing, body validation, size limits) as problems."""
    assert isinstance(exc, HTTPException)
    cls = _problem_class(exc.status_code)
    extra: dict[str, Any] = {}
    detail = exc.detail if exc.detail else cls.title
    if isinstance(exc, ValidationException):
        errors = _plain_errors(exc.extra, _aliases(request))
        if errors:
            extra["errors"] = errors
        detail = "; ".join(e["message"] for e in errors[:5]) or "invalid input"
    return problem_response(request, cls(detail, **extra))


def on_recursion(request: HttpRequest, exc: Exception) -> Response[Any]:
    """JSON nested deeper than the decoder goes is bad input (400); any other recursion a bug."""
    if _raised_by_body_decoder(exc):
        return problem_response(request, InvalidRequest("request body is nested too deeply"))
    return on_unexpected(request, exc)


def on_unicode(request: HttpRequest, exc: Exception) -> Response[Any]:
    """A JSON body that is not UTF-8 is bad input (400); any other decoding failure a bug."""
    if _raised_by_body_decoder(exc):
        return problem_response(request, InvalidRequest("request body is not valid UTF-8"))
    return on_unexpected(request, exc)


def _raised_by_body_decoder(exc: Exception) -> bool:
    """Whether Litestar's request body decoder gave up (its errors are not HTTP errors)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].name == "decode_json"


def on_unexpected(request: HttpRequest, exc: Exception) -> Response[Any]:
    """A bug: log it (type only, the message may hold input) and answer a bare 500."""
    log.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return problem_response(request, VouchError("internal error; the request had no effect"))


@functools.cache
def _problem_class(status: int) -> type[VouchError]:
    """Our class for an HTTP status Litestar answers itself (one per status, made once)."""
    known = _BY_STATUS.get(status)
    if known is not None:
        return known
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "HTTP error"
    attrs = {"slug": _slug(status), "status": status, "title": title}
    return type(f"Http{status}Problem", (VouchError,), attrs)


def _slug(status: int) -> str:
    return {
        405: "method-not-allowed",
        406: "not-acceptable",
        415: "unsupported-media-type",
        429: "rate-limited",
    }.get(status, f"http-{status}")


def _plain_errors(extra: Any, aliases: dict[str, str]) -> list[dict[str, Any]]:
    """Litestar's validation errors (`{message, key, source}`, msgspec's wording) with each
    message a sentence naming its field as the client spells it; Litestar names the whole
    body `data`, and a parameter by its Python name."""
    if not isinstance(extra, list):
        return []
    errors = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        key = aliases.get(str(item.get("key") or ""), str(item.get("key") or ""))
        field = "" if key == "data" and str(item.get("source")) == "body" else key
        message = sentence(str(item.get("message", "")), field)
        errors.append({**item, "key": key, "message": message})
    return errors


def _aliases(request: HttpRequest) -> dict[str, str]:
    """Python parameter name -> the name in the request (`all_people` is `?all=`)."""
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    if signature is None:
        return {}
    aliases = {}
    for name, definition in signature.parameters.items():
        marker = definition.kwarg_definition
        alias = getattr(marker, "query", None) or getattr(marker, "name", None)
        if isinstance(alias, str) and alias != name:
            aliases[name] = alias
    return aliases


EXCEPTION_HANDLERS = {
    VouchError: on_vouch_error,
    HTTPException: on_http_exception,
    RecursionError: on_recursion,
    UnicodeDecodeError: on_unicode,
    Exception: on_unexpected,
}
