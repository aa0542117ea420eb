"""The admin pages: people, one person's keys, invites, and the audit trail.

For the org policy's admins only, checked on every request: a signed-out browser goes to
sign in, anyone else gets a 403 page. They run the admin API's own functions
(`broker.routes.admin`) behind the browser pages' session, CSRF, origin and CSP rules
(`broker.routes.pages`, `broker.browser_session`). What raises someone's power (an invite, a
reinstatement) takes the admin's user-verified tap over the action the page shows: the
page's script checks that the challenge commits to it before the key is asked, and the
broker that the action shown is the one the challenge committed to. What lowers power
(revoking a person or a key, cancelling an invite) is a form post with the CSRF token.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import get, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from broker.actions import Action, canonical_json
from broker.assertion import WebAuthnJson
from broker.auth import HttpRequest, ServicesDep
from broker.browser_session import CSRF_FIELD, browser_person
from broker.delegation_states import with_states
from broker.errors import InvalidRequest, NotFound, PermissionDenied, VouchError
from broker.identity import person_email
from broker.revoke import Target
from broker.routes.admin import (
    AUDIT_ID,
    ActionProposal,
    PersonNamed,
    audit_events,
    cancel_unused_invite,
    issue_invite,
    people_page,
    propose_invite,
    propose_reinstatement,
    reinstate_person,
    revoke_handle,
)
from broker.routes.pages import (
    AWS_WORDS,
    SIGNIN_NEXT_MAX,
    FormBody,
    _message,
    _page,
    _page_person,
    _when,
)
from broker.routes.signin import ChallengeId
from broker.services import Services
from broker.session import Person
from policies.duration import parse_duration

PEOPLE_PER_PAGE = 100
EVENTS_PER_PAGE = 50
EVENTS_MAX = 200
AWS_WAIT_S = 2.0
"""How long a revocation's page waits for AWS to be told before it says where AWS stands."""
NOT_ADMIN = "this needs an admin named in the org policy"
_TIMES = ("expires_at", "revoked_at")  # audit fields that are Unix times

EmailPath = Annotated[str, PathParameter(min_length=3, max_length=254)]
Form = Annotated[dict[str, str], FormBody]


class ActionComplete(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson
    action: Annotated[str, msgspec.Meta(max_length=1024)]
    """The canonical action the page showed: it must be the one the tap signed."""


def _signin(path: str) -> Redirect:
    """To sign in, then back to `path` (or to the people page when `path` is too long for
    the sign-in page's `next`)."""
    target = path if len(path) <= SIGNIN_NEXT_MAX else "/admin/people"
    return Redirect(f"/signin?next={quote(target, safe='/@')}", status_code=303)


def _error(
    request: HttpRequest, person: Person | None, services: Services, exc: VouchError
) -> Template:
    return _message(request, person, services, exc.title, exc.detail, status=exc.status)


def _check_admin(services: Services, person: Person) -> None:
    """Raises: PermissionDenied unless the org policy names `person` an admin."""
    if not services.org.is_admin(person.email):
        raise PermissionDenied(NOT_ADMIN)


async def _viewer(
    request: HttpRequest, services: Services, path: str
) -> Person | Redirect | Template:
    """The signed-in admin looking at a page, or what to answer instead (sign in; 403)."""
    person = await browser_person(request, services)
    if person is None:
        return _signin(path)
    try:
        _check_admin(services, person)
    except PermissionDenied as exc:
        return _error(request, person, services, exc)
    return person


async def _page_admin(request: HttpRequest, services: Services) -> Person:
    """The admin behind a page script's JSON request (its CSRF token in the header).

    Raises:
        PermissionDenied: a foreign origin, a missing or wrong CSRF token, not an admin.
        Unauthenticated: no live session in this browser.
    """
    person = await _page_person(request, services)
    _check_admin(services, person)
    return person


def _person_href(email: str) -> str:
    return "/admin/people/" + quote(email, safe="@")


def _key_counts(states: Counter[str]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"


def _at(epoch: float) -> str:
    """An audit event's time, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _shown(name: str, value: object) -> str:
    """An audit field as text (the template escapes it)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if name in _TIMES and isinstance(value, int):
        return _when(value)
    return str(value)


@get("/admin/people", include_in_schema=False)
async def people_list(
    request: HttpRequest,
    services: ServicesDep,
    after: Annotated[str, QueryParameter(max_length=254)] = "",
) -> Any:
    """Every registered person, by email, a page at a time."""
    admin = await _viewer(request, services, "/admin/people")
    if not isinstance(admin, Person):
        return admin
    try:
        page = await people_page(services, after=after, limit=PEOPLE_PER_PAGE)
    except VouchError as exc:
        return _error(request, admin, services, exc)
    rows = [
        {
            "email": p.email,
            "href": _person_href(p.email),
            "state": p.state,
            "since": _when(p.since) if p.since else "",
            "key_counts": _key_counts(Counter(p.keys)),
        }
        for p in page.people
    ]
    more = f"/admin/people?{urlencode({'after': page.next})}" if page.next else None
    return _page(
        "admin_people.html",
        request,
        admin,
        services,
        title="People",
        section="people",
        people=rows,
        more=more,
        per_page=PEOPLE_PER_PAGE,
    )


@get("/admin/people/{email:str}", include_in_schema=False)
async def person_detail(
    email: EmailPath,
    request: HttpRequest,
    services: ServicesDep,
    done: Annotated[str, QueryParameter(max_length=16)] = "",
    aws: Annotated[str, QueryParameter(max_length=16)] = "",
) -> Any:
    """One person: their keys (each revocable), their delegations, and revoke or reinstate."""
    admin = await _viewer(request, services, _person_href(email))
    if not isinstance(admin, Person):
        return admin
    try:
        email = person_email(email)
        record = await services.registry.person(email)
        if record is None:
            raise NotFound(f"no registered person {email}")
        now = int(time.time())
        listed = await with_states(
            services.revocations, await services.delegations.store.list(email, now=now)
        )
    except VouchError as exc:
        return _error(request, admin, services, exc)
    keys = [
        {
            "cid": c.cid,
            "state": c.state,
            "added": _when(c.added_at) if c.added_at else "",
            "last_used": _when(c.last_used) if c.last_used else "never",
            "via": c.via or "(not recorded)",
            "via_detail": c.invite or c.approved_by or "",
            "aaguid": c.aaguid,
            "software": c.software,
        }
        for c in record.credentials
    ]
    delegations = [
        {
            **msgspec.structs.asdict(d),
            "until": _when(d.expires_at),
            "models": [services.catalog.display_name(m) for m in d.models],
        }
        for d in sorted(listed, key=lambda d: d.created_at, reverse=True)
    ]
    revoked = record.disabled_since is not None
    since = record.disabled_since if revoked else record.registered_at
    reinstate = Action(action="reinstate", by=admin.email, email=email)
    notices = {
        "revoked": f"Revoked {email}: their sessions, keys and agent tokens are refused"
        " from now on.",
        "already": f"{email} was already revoked: nothing changed.",
        "key": "Revoked the key: its sessions and the agent tokens it approved are refused.",
        "reinstated": f"Reinstated {email}: they may enroll a new key with a new invite"
        " (their old keys stay revoked).",
    }
    notice = notices.get(done)
    if notice and done in ("revoked", "key"):
        notice = f"{notice} {AWS_WORDS.get(aws, '')}".strip()
    return _page(
        "admin_person.html",
        request,
        admin,
        services,
        title=email,
        section="people",
        email=email,
        href=_person_href(email),
        revoked=revoked,
        since=_when(since) if since else "",
        keys=keys,
        delegations=delegations,
        reinstate_canonical=canonical_json(reinstate).decode() if revoked else "",
        notice=notice,
    )


@post("/admin/people/{email:str}/revoke", status_code=303, include_in_schema=False)
async def revoke_person(
    email: EmailPath, data: Form, request: HttpRequest, services: ServicesDep
) -> Any:
    """Revoke a person (by user): sign-in, keys, sessions, agent tokens, unused invites."""
    admin = await _page_person(request, services, data.get(CSRF_FIELD, ""))
    try:
        _check_admin(services, admin)
        reason = data.get("reason", "")
        if len(reason) > 256:
            raise InvalidRequest("reason: at most 256 characters")
        done = await revoke_handle(
            services, admin, Target("user", email), reason=reason, wait_s=AWS_WAIT_S
        )
    except VouchError as exc:
        return _error(request, admin, services, exc)
    state = "already" if done.already_revoked else "revoked"
    query = urlencode({"done": state, "aws": done.aws_sessions})
    return Redirect(f"{_person_href(done.value)}?{query}", status_code=303)


@post("/admin/keys/{cid:str}/revoke", status_code=303, include_in_schema=False)
async def revoke_key(
    cid: Annotated[str, PathParameter(max_length=64)],
    data: Form,
    request: HttpRequest,
    services: ServicesDep,
) -> Any:
    """Revoke one security key (by credential); back to its owner's page."""
    admin = await _page_person(request, services, data.get(CSRF_FIELD, ""))
    try:
        _check_admin(services, admin)
        key = await services.registry.get(cid)
        if key is None:
            raise NotFound(f"no registered security key {cid!r}")
        done = await revoke_handle(
            services, admin, Target("credential", cid), reason="", wait_s=AWS_WAIT_S
        )
    except VouchError as exc:
        return _error(request, admin, services, exc)
    query = urlencode({"done": "key", "aws": done.aws_sessions})
    return Redirect(f"{_person_href(key.email)}?{query}", status_code=303)


@post("/pages/admin/reinstate/begin", status_code=200, include_in_schema=False)
async def reinstate_begin_page(
    data: JSONBody[PersonNamed], request: HttpRequest, services: ServicesDep
) -> ActionProposal:
    """`POST /v1/admin/reinstatements/begin`, for the person page's script."""
    admin = await _page_admin(request, services)
    return await propose_reinstatement(services, admin, data.email)


@post("/pages/admin/reinstate/complete", status_code=200, include_in_schema=False)
async def reinstate_complete_page(
    data: JSONBody[ActionComplete], request: HttpRequest, services: ServicesDep
) -> dict[str, str]:
    """The admin's tap over the reinstatement the page showed."""
    admin = await _page_admin(request, services)
    done = await reinstate_person(
        services, admin, data.challenge_id, data.credential, shown=data.action
    )
    return {"email": done.email}


@get("/admin/invites", include_in_schema=False)
async def invites_list(
    request: HttpRequest,
    services: ServicesDep,
    cancelled: Annotated[str, QueryParameter(max_length=64)] = "",
) -> Any:
    """Unused invites (each cancellable), and a form to invite someone with a tap."""
    admin = await _viewer(request, services, "/admin/invites")
    if not isinstance(admin, Person):
        return admin
    try:
        unused = await services.invites.unused(now=int(time.time()))
    except VouchError as exc:
        return _error(request, admin, services, exc)
    rows = [
        {
            **msgspec.structs.asdict(i),
            "expires": _when(i.expires_at),
            "created": _when(i.created_at),
        }
        for i in unused
    ]
    return _page(
        "admin_invites.html",
        request,
        admin,
        services,
        title="Invites",
        section="invites",
        invites=rows,
        admin_email=admin.email,
        lifetime=services.settings.invite_ttl_s // 3600,
        notice=f"Cancelled invite {cancelled}: its code no longer enrolls anyone."
        if cancelled
        else None,
    )


@post("/admin/invites/{invite_id:str}/cancel", status_code=303, include_in_schema=False)
async def cancel_invite_page(
    invite_id: Annotated[str, PathParameter(max_length=64)],
    data: Form,
    request: HttpRequest,
    services: ServicesDep,
) -> Any:
    admin = await _page_person(request, services, data.get(CSRF_FIELD, ""))
    try:
        _check_admin(services, admin)
        invite = await cancel_unused_invite(services, admin, invite_id)
    except VouchError as exc:
        return _error(request, admin, services, exc)
    return Redirect(f"/admin/invites?{urlencode({'cancelled': invite.id})}", status_code=303)


@post("/pages/admin/invites/begin", status_code=200, include_in_schema=False)
async def invite_begin_page(
    data: JSONBody[PersonNamed], request: HttpRequest, services: ServicesDep
) -> ActionProposal:
    """`POST /v1/admin/invites/begin`, for the invites page's script."""
    admin = await _page_admin(request, services)
    return await propose_invite(services, admin, data.email)


@post("/pages/admin/invites/complete", status_code=201, include_in_schema=False)
async def invite_complete_page(
    data: JSONBody[ActionComplete], request: HttpRequest, services: ServicesDep
) -> dict[str, object]:
    """The admin's tap over the invite the page showed: the code and the enrollment link,
    this once (the broker keeps only a hash of the code)."""
    admin = await _page_admin(request, services)
    done = await issue_invite(
        services, admin, data.challenge_id, data.credential, shown=data.action
    )
    link = f"{services.settings.issuer}/enroll?{urlencode({'code': done.code})}"
    return {
        "id": done.id,
        "email": done.email,
        "code": done.code,
        "link": link,
        "expires": _when(done.expires_at),
    }


@get("/admin/audit", include_in_schema=False)
async def audit_list(
    *,
    request: HttpRequest,
    services: ServicesDep,
    of_person: Annotated[str, QueryParameter(name="person", max_length=254)] = "",
    agent: Annotated[str, QueryParameter(max_length=128)] = "",
    since: Annotated[str, QueryParameter(max_length=16)] = "",
    before: Annotated[str, QueryParameter(max_length=40)] = "",
    limit: Annotated[int, QueryParameter(ge=1, le=EVENTS_MAX)] = EVENTS_PER_PAGE,
) -> Any:
    """The audit trail, newest first, filtered by person, agent and age; "older" pages on."""
    admin = await _viewer(request, services, "/admin/audit")
    if not isinstance(admin, Person):
        return admin
    filters = {"person": of_person.strip(), "agent": agent.strip(), "since": since.strip()}
    try:
        age = parse_duration(filters["since"]) if filters["since"] else None
        if filters["since"] and age is None:
            raise InvalidRequest("since: a duration such as 1h, 24h or 7d, or empty")
        if before and not re.fullmatch(AUDIT_ID, before):
            raise InvalidRequest("before: a stream id is <ms>[-<seq>]")
        page = await audit_events(
            services,
            limit=limit,
            before=before or "+",
            since=time.time() - age if age is not None else None,
            person=filters["person"] or None,
            agent=filters["agent"] or None,
        )
    except VouchError as exc:
        return _error(request, admin, services, exc)
    events = [
        {
            "id": str(e["id"]),
            "event": str(e.get("event", "")),
            "when": _at(float(ts)) if isinstance(ts := e.get("ts"), (int, float)) else str(ts),
            "fields": [
                (name, _shown(name, value))
                for name, value in e.items()
                if name not in ("id", "event", "ts")
            ],
        }
        for e in page.events
    ]
    kept: dict[str, object] = {name: value for name, value in filters.items() if value}
    if limit != EVENTS_PER_PAGE:
        kept["limit"] = limit
    older = f"/admin/audit?{urlencode({**kept, 'before': page.next})}" if page.next else None
    return _page(
        "admin_audit.html",
        request,
        admin,
        services,
        title="Audit",
        section="audit",
        events=events,
        filters=filters,
        older=older,
        newest="/admin/audit?" + urlencode(kept) if before else None,
        per_page=limit,
    )


ROUTES = [
    people_list,
    person_detail,
    revoke_person,
    revoke_key,
    reinstate_begin_page,
    reinstate_complete_page,
    invites_list,
    cancel_invite_page,
    invite_begin_page,
    invite_complete_page,
    audit_list,
]
