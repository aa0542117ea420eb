"""Who is calling: bearer tokens turned into verified, unrevoked principals."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from broker.errors import PermissionDenied, Unauthenticated
from broker.request_context import note_principal
from broker.services import Services
from broker.session import Person, verify_session

HttpRequest = Request[Any, Any, Any]
"""A request to the broker (it uses no Litestar user, auth or state types)."""


def bearer(request: HttpRequest) -> str:
    """The bearer token of the request.

    Raises:
        Unauthenticated: no `Authorization: Bearer` header.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    return token.strip()


def client_address(request: HttpRequest) -> str:
    """The peer address (behind a proxy, run uvicorn with --proxy-headers to see the client)."""
    return request.client.host if request.client else "unknown"


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


async def provide_person(request: HttpRequest, services: NamedDependency[Services]) -> Person:
    """The signed-in person: session verified, then revocation checked (fail closed).

    Raises:
        TokenInvalid, TokenExpired, TokenRevoked, StoreUnavailable.
    """
    person = verify_session(
        bearer(request), services.session_expect, keys=services.keys, now=time.time()
    )
    note_principal(person.email)
    await services.revocations.check(person.handles(), issued_at=person.issued_at)
    return person


async def provide_optional_person(
    request: HttpRequest, services: NamedDependency[Services]
) -> Person | None:
    if "authorization" not in request.headers:
        return None
    return await provide_person(request, services)


async def provide_admin(
    person: NamedDependency[Person], services: NamedDependency[Services]
) -> Person:
    """Raises: PermissionDenied unless the org policy names this person an admin."""
    if not services.org.is_admin(person.email):
        raise PermissionDenied("this needs an admin named in the org policy")
    return person


ServicesDep = NamedDependency[Services]
PersonDep = NamedDependency[Person]
OptionalPersonDep = NamedDependency[Person | None]
