"""Enrollment, login and logout endpoints."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import post
from litestar.di import Provide
from litestar.params import JSONBody

from broker.actions import Action
from broker.actions import Approval as TapApproval
from broker.assertion import WebAuthnJson
from broker.auth import (
    HttpRequest,
    OptionalPersonDep,
    PersonDep,
    ServicesDep,
    client_address,
    provide_optional_person,
)
from broker.identity import limit_identity

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
ChallengeId = Annotated[str, msgspec.Meta(min_length=16, max_length=64)]


class EnrollBegin(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    code: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class CeremonyComplete(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson


class EnrollComplete(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson
    """The new key's attestation response."""
    approval: WebAuthnJson | None = None
    """Adding a key without an invite: an existing key's assertion over `approval.options`."""


class LoginBegin(msgspec.Struct, forbid_unknown_fields=True):
    email: Email | None = None


class Approval(msgspec.Struct):
    """A tap-bound action: what it approves, the exact bytes its challenge commits to, and
    the WebAuthn request options for the approving key."""

    action: Action
    action_canonical: str
    options: WebAuthnJson

    @classmethod
    def of(cls, approval: TapApproval) -> Approval:
        return cls(approval.action, approval.canonical, approval.options)


class Ceremony(msgspec.Struct):
    challenge_id: str
    options: WebAuthnJson


class EnrollCeremony(msgspec.Struct):
    challenge_id: str
    options: WebAuthnJson
    approval: Approval | None = None
    """Present when an existing key must approve this enrollment (no invite)."""


class Enrolled(msgspec.Struct):
    email: str
    credential: str
    via: str
    """What authorized the key: "invite", or "key" (a tap by another key of the person)."""


class SignedOut(msgspec.Struct):
    email: str
    signed_out_at: float


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
) -> EnrollCeremony:
    """Start registering a key: with an invite code, or with a session to add another key,
    which a registered key of the same person must then approve with a user-verified tap."""
    await services.limits.hit(
        "enroll", address=client_address(request), identity=limit_identity(data.email)
    )
    ceremony = await services.signin.enroll_begin(data.email, code=data.code, person=person)
    approval = Approval.of(ceremony.approval) if ceremony.approval else None
    return EnrollCeremony(ceremony.challenge_id, ceremony.options, approval)


@post("/v1/enroll/complete", status_code=200, tags=["sign-in"])
async def enroll_complete(data: JSONBody[EnrollComplete], services: ServicesDep) -> Enrolled:
    """Finish registering: the new key's attestation, and the approving tap if one was asked."""
    done = await services.signin.enroll_complete(data.challenge_id, data.credential, data.approval)
    return Enrolled(done.email, done.cid, done.via)


@post("/v1/login/begin", status_code=200, tags=["sign-in"])
async def login_begin(
    data: JSONBody[LoginBegin], services: ServicesDep, request: HttpRequest
) -> Ceremony:
    """Start a login: by email, or usernameless with a discoverable credential."""
    await services.limits.hit(
        "login", address=client_address(request), identity=limit_identity(data.email)
    )
    ceremony = await services.signin.login_begin(data.email)
    return Ceremony(ceremony.challenge_id, ceremony.options)


@post("/v1/login/complete", status_code=200, tags=["sign-in"])
async def login_complete(data: JSONBody[CeremonyComplete], services: ServicesDep) -> SessionIssued:
    """Finish a login: a verified assertion becomes a human session token."""
    token, exp, email = await services.signin.login_complete(data.challenge_id, data.credential)
    return SessionIssued(token, "Bearer", exp, email)


@post("/v1/logout", status_code=200, tags=["sign-in"])
async def logout(services: ServicesDep, person: PersonDep) -> SignedOut:
    """End this session at the broker, on every replica: its token is refused from now on."""
    return SignedOut(person.email, await services.signin.logout(person))


ROUTES = [enroll_begin, enroll_complete, login_begin, login_complete, logout]
