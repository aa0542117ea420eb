"""The browser's session: the session JWT in an HttpOnly cookie, and its CSRF token.

The cookie carries the same session token `/v1/login/complete` hands the CLI, but only
ever as a cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's page
sends it; Secure unless the issuer is http://localhost). The CLI's bearer tokens are never
accepted from a cookie, nor the cookie as a bearer token on the API: each door reads its
own place.

CSRF: every state-changing page request carries a token bound to the session, the
SHA-256 of the session token under a domain tag. Only a holder of the cookie's value can
compute it, it needs no stored state (so any replica checks it), and it dies with the
session. The POST must also come from one of the broker's origins (`Origin`, or for a
form under `Referrer-Policy: no-referrer`, `Origin: null` with the browser's own
`Sec-Fetch-Site: same-origin`): that is the only check before sign-in, when there is no
session to bind a token to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlsplit

from litestar.datastructures import Cookie

from broker.auth import HttpRequest
from broker.errors import PermissionDenied, Unauthenticated
from broker.services import Services
from broker.session import Person, verify_session

COOKIE = "vouch_session"
SECURE_COOKIE = "__Host-vouch_session"  # the prefix: Secure, Path=/, no Domain (RFC 6265bis)
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
_CSRF_DOMAIN = b"vouch-csrf-v1\x00"


def cookie_secure(issuer: str) -> bool:
    """Secure cookies everywhere but on plain-http localhost (development and tests)."""
    parts = urlsplit(issuer)
    return not (parts.scheme == "http" and parts.hostname == "localhost")


def cookie_name(issuer: str) -> str:
    return SECURE_COOKIE if cookie_secure(issuer) else COOKIE


def session_cookie(issuer: str, token: str, expires_at: int) -> Cookie:
    """The cookie that holds a browser's session until the token itself expires."""
    return Cookie(
        key=cookie_name(issuer),
        value=token,
        path="/",
        expires=expires_at,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(issuer),
    )


def cleared_cookie(issuer: str) -> Cookie:
    return Cookie(
        key=cookie_name(issuer),
        value="",
        path="/",
        max_age=0,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(issuer),
    )


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: a digest of the (HttpOnly) session token."""
    digest = hashlib.sha256(_CSRF_DOMAIN + session_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_token(request: HttpRequest, issuer: str) -> str | None:
    return request.cookies.get(cookie_name(issuer)) or None


async def browser_person(request: HttpRequest, services: Services) -> Person | None:
    """The person signed in with this browser, or None (no cookie, or a dead session).

    Raises:
        StoreUnavailable: revocation could not be checked (fail closed).
    """
    token = session_token(request, services.settings.issuer)
    if token is None:
        return None
    try:
        person = verify_session(token, services.session_expect, keys=services.keys, now=time.time())
        await services.revocations.check(person.handles(), issued_at=person.issued_at)
    except Unauthenticated:  # expired, revoked or malformed: the browser signs in again
        return None
    return person


def check_origin(request: HttpRequest, services: Services) -> None:
    """A state-changing page request must come from one of the broker's own origins.

    Raises:
        PermissionDenied: no `Origin`, or another one (a cross-site form or fetch).
    """
    origin = request.headers.get("origin")
    if origin in services.settings.origins:
        return
    # Under the broker's `Referrer-Policy: no-referrer` a browser's form POST says
    # `Origin: null`; then its own Sec-Fetch-Site (which no page can set) must vouch for it.
    same = request.headers.get("sec-fetch-site") == "same-origin"
    if origin in (None, "null") and same:
        return
    raise PermissionDenied("this request did not come from the broker's own pages")


def check_csrf(request: HttpRequest, services: Services, sent: str | None) -> None:
    """The origin, then the session-bound token (`X-CSRF-Token` or the form's `csrf`).

    Raises:
        PermissionDenied: a foreign origin, no session, or a missing or wrong token.
    """
    check_origin(request, services)
    token = session_token(request, services.settings.issuer)
    given = sent if sent is not None else request.headers.get(CSRF_HEADER, "")
    if token is None or not hmac.compare_digest(given.encode(), csrf_token(token).encode()):
        raise PermissionDenied("missing or wrong CSRF token: reload the page and try again")
