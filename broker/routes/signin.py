"""Enrollment and login endpoints."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import post
from litestar.di import Provide
from litestar.params import JSONBody

from broker.assertion import WebAuthnJson
from broker.auth import (
    HttpRequest,
    OptionalPersonDep,
    ServicesDep,
    client_address,
    provide_optional_person,
)

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
ChallengeId = Annotated[str, msgspec.Meta(min_length=16, max_length=64)]


class EnrollBegin(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    code: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class CeremonyComplete(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson


class LoginBegin(msgspec.Struct, forbid_unknown_fields=True):
    email: Email | None = None


class Ceremony(msgspec.Struct):
    challenge_id: str
    options: WebAuthnJson


class Enrolled(msgspec.Struct):
    email: str
    credential: str


class SessionIssued(msgspec.Struct):
    token: str
    token_type: str
    expires_at: int
    email: str


@post(
    "/v1/enroll/begin",
    dependencies={"person": Provide(provide_optional_person)},
    status_code=200,
    tags=["sign-in"],
)
async def enroll_begin(
    data: JSONBody[EnrollBegin],
    services: ServicesDep,
    person: OptionalPersonDep,
    request: HttpRequest,
) -> Ceremony:
    """Start registering a key: with an invite code, or a session to add another key."""
    await services.limits.hit("enroll", address=client_address(request), identity=data.email)
    ceremony = await services.signin.enroll_begin(data.email, code=data.code, person=person)
    return Ceremony(ceremony.challenge_id, ceremony.options)


@post("/v1/enroll/complete", status_code=200, tags=["sign-in"])
async def enroll_complete(data: JSONBody[CeremonyComplete], services: ServicesDep) -> Enrolled:
    """Finish registering: the authenticator's attestation response."""
    email, cid = await services.signin.enroll_complete(data.challenge_id, data.credential)
    return Enrolled(email, cid)


@post("/v1/login/begin", status_code=200, tags=["sign-in"])
async def login_begin(
    data: JSONBody[LoginBegin], services: ServicesDep, request: HttpRequest
) -> Ceremony:
    """Start a login: by email, or usernameless with a discoverable credential."""
    await services.limits.hit("login", address=client_address(request), identity=data.email)
    ceremony = await services.signin.login_begin(data.email)
    return Ceremony(ceremony.challenge_id, ceremony.options)


@post("/v1/login/complete", status_code=200, tags=["sign-in"])
async def login_complete(data: JSONBody[CeremonyComplete], services: ServicesDep) -> SessionIssued:
    """Finish a login: a verified assertion becomes a human session token."""
    token, exp, email = await services.signin.login_complete(data.challenge_id, data.credential)
    return SessionIssued(token, "Bearer", exp, email)


ROUTES = [enroll_begin, enroll_complete, login_begin, login_complete]
