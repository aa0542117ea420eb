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
from broker.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    VouchError,
)

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
    if error.status == 401:
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
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra
    detail = exc.detail if exc.detail else cls.title
    if isinstance(exc, ValidationException):
        detail = "request body or parameters are not valid: " + _summary(exc.extra)
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


def _summary(extra: Any) -> str:
    if isinstance(extra, list) and extra:
        parts = []
        for item in extra[:5]:
            if isinstance(item, dict):
                parts.append(
                    f"{item.get('key') or item.get('source', '')}: {item.get('message', '')}"
                )
        return "; ".join(parts) or "invalid input"
    return "invalid input"


EXCEPTION_HANDLERS = {
    VouchError: on_vouch_error,
    HTTPException: on_http_exception,
    RecursionError: on_recursion,
    UnicodeDecodeError: on_unicode,
    Exception: on_unexpected,
}
