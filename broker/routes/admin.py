"""Admin endpoints: people, invites, reinstatement, revocations and the audit trail.

What raises anyone's power (an invite, a reinstatement) takes the admin's fresh, user-verified
tap bound to that action (begin/complete, `broker/actions.py`); what lowers it or only reads
(revoking, cancelling an invite, listing) takes the admin session alone. Each route's work is
a function of its own here, which the admin pages (`broker.routes.admin_pages`) call too.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Literal

import msgspec
from litestar import delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, PathParameter, QueryParameter

from broker.actions import Action
from broker.assertion import WebAuthnJson
from broker.audit import AuditFilter, AuditPage
from broker.auth import ServicesDep, provide_admin
from broker.aws_cut import Status as AwsStatus
from broker.errors import Conflict, InvalidRequest, NotFound, from_policy
from broker.identity import agent_handle, person_email
from broker.invites import Invite
from broker.registry import PersonRecord
from broker.revoke import Kind, Target
from broker.routes.delegations import check_free_text
from broker.routes.signin import Approval, CeremonyComplete
from broker.services import Services
from broker.session import Person
from policies.errors import PoliciesError
from policies.identity import AGENT_PREFIX, check_agent_name

ADMIN = {"admin": Provide(provide_admin)}
AdminDep = NamedDependency[Person]
AUDIT_ID = r"^(\+|\d+(-\d+)?)$"
"""`before`: a stream id, or `+` for the newest."""
PEOPLE_LIMIT = 500
"""The most people one `GET /v1/admin/people` answers; page on with `next`."""


class PersonNamed(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]


class ActionProposal(msgspec.Struct):
    """A begin step's answer: tap `approval.options` and send it to the matching complete."""

    challenge_id: str
    action: Action
    action_canonical: str
    options: WebAuthnJson


class InviteCreated(msgspec.Struct):
    id: str
    email: str
    code: str
    """Shown once; the broker keeps only a hash of it."""
    expires_in: int
    expires_at: int


class Reinstated(msgspec.Struct):
    email: str
    reinstated_at: float


class PersonInfo(msgspec.Struct, kw_only=True):
    """A registered person: whether they may sign in, since when, and their keys by state."""

    email: str
    state: Literal["active", "revoked"]
    since: int
    """Revoked: when. Active: when their first key was registered (0: never)."""
    keys: dict[str, int]
    """How many of their keys are in each state (active, flagged, revoked)."""

    @classmethod
    def of(cls, record: PersonRecord) -> PersonInfo:
        revoked = record.disabled_since is not None
        return cls(
            email=record.email,
            state="revoked" if revoked else "active",
            since=record.disabled_since
            if record.disabled_since is not None
            else record.registered_at,
            keys=dict(sorted(Counter(c.state for c in record.credentials).items())),
        )


class PeoplePage(msgspec.Struct):
    people: list[PersonInfo]
    """By email."""
    next: str | None
    """Pass as `after` for the following page; None: no more."""


async def _propose(services: Services, admin: Person, action: Action) -> ActionProposal:
    proposal = await services.actions.begin(admin, action)
    approval = Approval.of(proposal.approval)
    return ActionProposal(
        proposal.challenge_id, approval.action, approval.action_canonical, approval.options
    )


async def people_page(services: Services, *, after: str, limit: int) -> PeoplePage:
    """Raises: StoreUnavailable."""
    records, after_next = await services.registry.people(after=after, count=limit)
    return PeoplePage([PersonInfo.of(r) for r in records], after_next)


async def propose_invite(services: Services, admin: Person, email: str) -> ActionProposal:
    """Raises: InvalidRequest (not an email), PermissionDenied (revoked, or no admin key)."""
    email = person_email(email)
    await services.registry.check_enabled(email)
    return await _propose(services, admin, Action(action="invite", by=admin.email, email=email))


async def issue_invite(
    services: Services,
    admin: Person,
    challenge_id: str,
    credential: WebAuthnJson,
    *,
    shown: str | None = None,
) -> InviteCreated:
    """The invite the admin's tap approved, and its code (returned once, stored hashed).

    Raises: see `ActionTaps.complete`; PermissionDenied (the person was revoked meanwhile).
    """
    action, tap = await services.actions.complete(
        admin, "invite", challenge_id, credential, shown=shown
    )
    await services.registry.check_enabled(action.email)
    invite, code = await services.invites.issue(action.email, by=admin.email)
    await services.audit.record(
        "invited",
        actor=admin.email,
        subject=invite.email,
        invite=invite.id,
        cid=tap.credential.cid,
    )
    ttl = services.settings.invite_ttl_s
    return InviteCreated(invite.id, invite.email, code, ttl, invite.expires_at)


async def cancel_unused_invite(services: Services, admin: Person, invite_id: str) -> Invite:
    """Raises: NotFound (no such unused invite)."""
    invite = await services.invites.cancel(invite_id)
    if invite is None:
        raise NotFound(f"no unused invite {invite_id!r}")
    await services.audit.record(
        "invite_cancelled", actor=admin.email, subject=invite.email, invite=invite.id
    )
    return invite


async def propose_reinstatement(services: Services, admin: Person, email: str) -> ActionProposal:
    """Raises: InvalidRequest (not an email), Conflict (not revoked), PermissionDenied."""
    email = person_email(email)
    if not await services.registry.is_disabled(email):
        raise Conflict(f"{email} is not revoked")
    action = Action(action="reinstate", by=admin.email, email=email)
    return await _propose(services, admin, action)


async def reinstate_person(
    services: Services,
    admin: Person,
    challenge_id: str,
    credential: WebAuthnJson,
    *,
    shown: str | None = None,
) -> Reinstated:
    """Reinstate the person the admin's tap approved.

    Raises: see `ActionTaps.complete`; Conflict (not revoked any more).
    """
    action, tap = await services.actions.complete(
        admin, "reinstate", challenge_id, credential, shown=shown
    )
    if not await services.registry.reinstate(action.email):
        raise Conflict(f"{action.email} is not revoked")
    await services.audit.record(
        "reinstated", actor=admin.email, subject=action.email, cid=tap.credential.cid
    )
    return Reinstated(action.email, time.time())


async def audit_events(
    services: Services,
    *,
    limit: int,
    before: str = "+",
    since: float | None = None,
    person: str | None = None,
    agent: str | None = None,
) -> AuditPage:
    """Raises: InvalidRequest (a malformed id, email or agent), StoreUnavailable."""
    if before != "+" and any(int(part) >= 2**64 for part in before.split("-")):
        raise InvalidRequest("before: a stream id is <ms>[-<seq>], each below 2**64")
    where = AuditFilter(
        since=since,
        person=person_email(person) if person is not None else None,
        agent=audit_agent(agent) if agent is not None else None,
    )
    return await services.audit.read(count=limit, before=before, where=where)


@get("/v1/admin/people", dependencies=ADMIN, tags=["admin"])
async def list_people(
    *,
    services: ServicesDep,
    admin: AdminDep,
    limit: Annotated[int, QueryParameter(ge=1, le=PEOPLE_LIMIT)] = 100,
    after: Annotated[str, QueryParameter(max_length=254)] = "",
) -> PeoplePage:
    """Registered people by email, each active or revoked (since when) with their keys
    counted by state; `next` is the `after` of the following page (null: no more)."""
    return await people_page(services, after=after, limit=limit)


@post("/v1/admin/invites/begin", dependencies=ADMIN, status_code=200, tags=["admin"])
async def invite_begin(
    data: JSONBody[PersonNamed], services: ServicesDep, admin: AdminDep
) -> ActionProposal:
    """Propose an invite for an email; the admin's tap over its challenge issues it."""
    return await propose_invite(services, admin, data.email)


@post("/v1/admin/invites/complete", dependencies=ADMIN, status_code=201, tags=["admin"])
async def invite_complete(
    data: JSONBody[CeremonyComplete], services: ServicesDep, admin: AdminDep
) -> InviteCreated:
    """A one-time enrollment code for the proposed email (shown once; stored only hashed)."""
    return await issue_invite(services, admin, data.challenge_id, data.credential)


@get("/v1/admin/invites", dependencies=ADMIN, tags=["admin"])
async def list_invites(services: ServicesDep, admin: AdminDep) -> dict[str, list[Invite]]:
    """Unused invites, soonest to expire first (never their codes)."""
    return {"invites": await services.invites.unused(now=int(time.time()))}


@delete("/v1/admin/invites/{invite_id:str}", dependencies=ADMIN, status_code=200, tags=["admin"])
async def cancel_invite(
    invite_id: Annotated[str, PathParameter(max_length=64)],
    services: ServicesDep,
    admin: AdminDep,
) -> Invite:
    """Cancel an unused invite: its code no longer enrolls anyone."""
    return await cancel_unused_invite(services, admin, invite_id)


@post("/v1/admin/reinstatements/begin", dependencies=ADMIN, status_code=200, tags=["admin"])
async def reinstate_begin(
    data: JSONBody[PersonNamed], services: ServicesDep, admin: AdminDep
) -> ActionProposal:
    """Propose letting a revoked person back in; the admin's tap over it does it.

    Raises: Conflict when the person is not revoked.
    """
    return await propose_reinstatement(services, admin, data.email)


@post("/v1/admin/reinstatements/complete", dependencies=ADMIN, status_code=200, tags=["admin"])
async def reinstate_complete(
    data: JSONBody[CeremonyComplete], services: ServicesDep, admin: AdminDep
) -> Reinstated:
    """Reinstate the proposed person. Their revoked keys stay revoked: they enroll a new key
    with a new invite; tokens from before the revocation stay dead."""
    return await reinstate_person(services, admin, data.challenge_id, data.credential)


@get("/v1/admin/audit", dependencies=ADMIN, tags=["admin"])
async def read_audit(
    *,
    services: ServicesDep,
    admin: AdminDep,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    before: Annotated[str, QueryParameter(max_length=40, pattern=AUDIT_ID)] = "+",
    since: Annotated[float | None, QueryParameter(ge=0, le=2**42)] = None,
    # `person` is also the app's dependency (the caller): the parameter takes another name.
    of_person: Annotated[str | None, QueryParameter(name="person", max_length=254)] = None,
    agent: Annotated[str | None, QueryParameter(max_length=128)] = None,
) -> AuditPage:
    """Audit events, newest first; `next` is the `before` of the following page (null: no
    more). Filters: `since` (Unix time), `person` (an email), `agent` (a sub or a name)."""
    return await audit_events(
        services, limit=limit, before=before, since=since, person=of_person, agent=agent
    )


def audit_agent(value: str) -> str:
    """An agent sub in its one spelling, or a bare agent name.

    Raises: InvalidRequest.
    """
    if value.startswith(AGENT_PREFIX):
        return agent_handle(value)
    try:
        return check_agent_name(value)
    except PoliciesError as exc:
        raise from_policy(exc, invalid=InvalidRequest) from None


class RevocationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one handle: a delegation id, an agent sub, a person's email or a credential."""

    delegation: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    agent: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    user: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    credential: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=256)] = ""
    wait_s: Annotated[float, msgspec.Meta(ge=0, le=30)] = 0
    """How long to wait for AWS to be told (`aws_sessions` "cut") before answering."""


class RevocationDone(msgspec.Struct):
    handle: str
    value: str
    revoked_at: float
    aws_sessions: AwsStatus
    already_revoked: bool
    """It was revoked before: nothing changed; `revoked_at` is when it was."""


async def revoke_handle(
    services: Services, admin: Person, target: Target, *, reason: str, wait_s: float
) -> RevocationDone:
    """Revoke through the one Revoker, waiting up to `wait_s` for AWS to be told.

    Raises: InvalidRequest (a hidden character in `reason`); see `Revoker.revoke`.
    """
    check_free_text(reason, "reason", InvalidRequest)
    done = await services.revoker.revoke(admin, target, reason=reason, now=time.time())
    aws = await services.aws_cut.wait(done.aws_version, wait_s)
    return RevocationDone(
        done.target.kind, done.target.value, done.revoked_at, aws, done.already_revoked
    )


@post("/v1/admin/revocations", dependencies=ADMIN, status_code=201, tags=["admin"])
async def create_revocation(
    data: JSONBody[RevocationCreate], services: ServicesDep, admin: AdminDep
) -> RevocationDone:
    """Revoke by handle; acknowledged only once written, enforced on the next request."""
    target = single_target(data)
    return await revoke_handle(services, admin, target, reason=data.reason, wait_s=data.wait_s)


def single_target(data: RevocationCreate) -> Target:
    """Raises: InvalidRequest unless exactly one handle is given."""
    kinds: tuple[Kind, ...] = ("delegation", "agent", "user", "credential")
    given = [Target(kind, value) for kind in kinds if (value := getattr(data, kind))]
    if len(given) != 1:
        raise InvalidRequest("name exactly one of delegation, agent, user or credential")
    return given[0]


ROUTES = [
    list_people,
    invite_begin,
    invite_complete,
    list_invites,
    cancel_invite,
    reinstate_begin,
    reinstate_complete,
    read_audit,
    create_revocation,
]
