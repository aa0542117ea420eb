"""Admin endpoints: invites and the audit trail (revocations arrive with delegation)."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from litestar import get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, QueryParameter

from broker.auth import ServicesDep, provide_admin
from broker.errors import InvalidRequest
from broker.identity import person_email
from broker.revoke import Kind, Target
from broker.routes.delegations import check_free_text
from broker.session import Person

ADMIN = {"admin": Provide(provide_admin)}
AdminDep = NamedDependency[Person]


class InviteCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


class InviteCreated(msgspec.Struct):
    email: str
    code: str
    expires_in: int


@post("/v1/admin/invites", dependencies=ADMIN, status_code=201, tags=["admin"])
async def create_invite(
    data: JSONBody[InviteCreate], services: ServicesDep, admin: AdminDep
) -> InviteCreated:
    """A one-time enrollment code for an email (shown once; stored only hashed)."""
    email = person_email(data.email)
    code = await services.invites.create(email)
    await services.audit.record("invited", actor=admin.email, subject=email)
    return InviteCreated(email, code, services.settings.invite_ttl_s)


@get("/v1/admin/audit", dependencies=ADMIN, tags=["admin"])
async def read_audit(
    services: ServicesDep,
    admin: AdminDep,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    before: Annotated[str, QueryParameter(max_length=40, pattern=r"^(\+|\d+(-\d+)?)$")] = "+",
) -> dict[str, object]:
    """Audit events, newest first."""
    if before != "+" and any(int(part) >= 2**64 for part in before.split("-")):
        raise InvalidRequest("before: a stream id is <ms>[-<seq>], each below 2**64")
    return {"events": await services.audit.read(count=limit, before=before)}


class RevocationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one handle: a delegation id, an agent sub, a person's email or a credential."""

    delegation: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    agent: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    user: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    credential: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=256)] = ""


class RevocationDone(msgspec.Struct):
    handle: str
    value: str
    revoked_at: float


@post("/v1/admin/revocations", dependencies=ADMIN, status_code=201, tags=["admin"])
async def create_revocation(
    data: JSONBody[RevocationCreate], services: ServicesDep, admin: AdminDep
) -> RevocationDone:
    """Revoke by handle; acknowledged only once written, enforced on the next request."""
    target = single_target(data)
    check_free_text(data.reason, "reason", InvalidRequest)
    done = await services.revoker.revoke(admin, target, reason=data.reason, now=time.time())
    return RevocationDone(done.target.kind, done.target.value, done.revoked_at)


def single_target(data: RevocationCreate) -> Target:
    """Raises: InvalidRequest unless exactly one handle is given."""
    kinds: tuple[Kind, ...] = ("delegation", "agent", "user", "credential")
    given = [Target(kind, value) for kind in kinds if (value := getattr(data, kind))]
    if len(given) != 1:
        raise InvalidRequest("name exactly one of delegation, agent, user or credential")
    return given[0]


ROUTES = [create_invite, read_audit, create_revocation]
