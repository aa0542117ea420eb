"""The browser pages: enroll, sign in, approve an agent's request, my delegations, my keys,
my usage.

Server-rendered (Jinja2, autoescaped: an agent's words are text, never HTML) under a
strict policy: scripts and styles are files of this origin, nothing inline, nothing from
elsewhere, no framing. The WebAuthn ceremonies are the API's own (broker.signin,
broker.delegation); the page's script only moves their options and answers between the
broker and `navigator.credentials`. Session and CSRF: broker.browser_session.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any

import msgspec
from litestar import Response, get, post
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from broker.assertion import WebAuthnJson
from broker.auth import HttpRequest, ServicesDep, client_address
from broker.browser_session import (
    CSRF_FIELD,
    browser_person,
    check_csrf,
    check_origin,
    cleared_cookie,
    csrf_token,
    session_cookie,
    session_token,
)
from broker.delegation_states import with_states
from broker.errors import Unauthenticated, VouchError
from broker.grant import canonical_json
from broker.identity import limit_identity
from broker.revoke import Target
from broker.routes.delegations import request_grant
from broker.routes.keys import keys_of
from broker.routes.requests import deny
from broker.routes.signin import ChallengeId, Email
from broker.routes.usage import usage_report
from broker.services import Services
from broker.session import Person
from broker.usage import KEY_COLUMNS, NUMBER_COLUMNS, Row, key_cells, number_cells
from policies.usage import By

ASSETS = files("broker") / "page_assets"
ASSET_TYPES = {
    "pages.css": "text/css",
    "pages.js": "text/javascript",
    "admin.css": "text/css",  # the admin pages' (broker.routes.admin_pages)
    "admin.js": "text/javascript",
}
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": PAGE_CSP}
Code = Annotated[str, PathParameter(min_length=4, max_length=16, pattern=r"^[A-Za-z0-9-]+$")]
SIGNIN_NEXT_MAX = 512
"""The longest `next` the sign-in page takes: an admin's page of a person (emails <= 254)."""
NextPath = Annotated[str, QueryParameter(name="next", max_length=SIGNIN_NEXT_MAX)]
FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)
AWS_WORDS = {
    "cut": "AWS now denies its live sessions too.",
    "pending": "AWS will deny its live sessions within a minute.",
    "disabled": "Live AWS sessions end when they expire (at most an hour).",
}


class CodeBody(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Ceremony(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson


class ApproveComplete(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson
    grant: Annotated[str, msgspec.Meta(max_length=4096)]
    """The canonical grant the page showed: it must be the one the tap signed."""


class Empty(msgspec.Struct, forbid_unknown_fields=True):
    pass


def _page(
    name: str,
    request: HttpRequest,
    person: Person | None,
    services: Services,
    status: int = 200,
    **context: Any,
) -> Template:
    token = session_token(request, services.settings.issuer) if person else None
    is_admin = person is not None and services.org.is_admin(person.email)  # the nav's Admin link
    return Template(
        template_name=name,
        context={
            "person": person,
            "csrf": csrf_token(token) if token else "",
            "is_admin": is_admin,
            **context,
        },
        status_code=status,
        headers=HEADERS,
        media_type=MediaType.HTML,
    )


def _message(
    request: HttpRequest,
    person: Person | None,
    services: Services,
    title: str,
    message: str,
    *,
    status: int = 200,
    link: dict[str, str] | None = None,
) -> Template:
    return _page(
        "message.html", request, person, services, status, title=title, message=message, link=link
    )


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p) or f"{seconds} s"


def _to_signin(path: str) -> Redirect:
    return Redirect(f"/signin?next={path}", status_code=303)


@get("/pages/assets/{name:str}", sync_to_thread=False, include_in_schema=False)
def asset(name: Annotated[str, PathParameter(max_length=64)]) -> Response[bytes]:
    """The pages' stylesheet and script.

    Raises:
        NotFoundException: not one of them.
    """
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise NotFoundException
    return Response((ASSETS / name).read_bytes(), media_type=media_type)


@get("/signin", include_in_schema=False)
async def signin_page(
    request: HttpRequest,
    services: ServicesDep,
    next_path: Annotated[
        str, QueryParameter(name="next", max_length=SIGNIN_NEXT_MAX)
    ] = "/delegations",
) -> Template:
    """Usernameless sign-in with a security key; then on to `next` (a path of this site)."""
    local = next_path.startswith("/") and not next_path.startswith(("//", "/\\"))
    return _page(
        "signin.html", request, None, services, title="Sign in", next=next_path if local else "/"
    )


@post("/pages/signin/begin", status_code=200, include_in_schema=False)
async def signin_begin(
    data: JSONBody[Empty], request: HttpRequest, services: ServicesDep
) -> dict[str, object]:
    check_origin(request, services)
    await services.limits.hit("login", address=client_address(request), identity=None)
    ceremony = await services.signin.login_begin(None)
    return {"challenge_id": ceremony.challenge_id, "options": ceremony.options}


@post("/pages/signin/complete", status_code=200, include_in_schema=False)
async def signin_complete(
    data: JSONBody[Ceremony], request: HttpRequest, services: ServicesDep
) -> Response[dict[str, str]]:
    """The session goes into the HttpOnly cookie only: the page never sees the token."""
    check_origin(request, services)
    token, exp, email = await services.signin.login_complete(data.challenge_id, data.credential)
    return Response(
        {"email": email}, cookies=[session_cookie(services.settings.issuer, token, exp)]
    )


@post("/signout", status_code=303, include_in_schema=False)
async def signout(
    data: Annotated[dict[str, str], FormBody], request: HttpRequest, services: ServicesDep
) -> Redirect:
    check_csrf(request, services, data.get(CSRF_FIELD, ""))
    person = await browser_person(request, services)
    if person is not None:
        await services.signin.logout(person)
    return Redirect("/signin", status_code=303, cookies=[cleared_cookie(services.settings.issuer)])


@get("/enroll", include_in_schema=False)
async def enroll_page(
    request: HttpRequest,
    services: ServicesDep,
    code: Annotated[str, QueryParameter(max_length=64)] = "",
) -> Template:
    """Register a security key with an admin's invite."""
    return _page("enroll.html", request, None, services, title="Register your key", code=code)


@post("/pages/enroll/begin", status_code=200, include_in_schema=False)
async def enroll_begin(
    data: JSONBody[CodeBody], request: HttpRequest, services: ServicesDep
) -> dict[str, object]:
    check_origin(request, services)
    await services.limits.hit(
        "enroll", address=client_address(request), identity=limit_identity(data.email)
    )
    ceremony = await services.signin.enroll_begin(data.email, code=data.code, person=None)
    return {"challenge_id": ceremony.challenge_id, "options": ceremony.options}


@post("/pages/enroll/complete", status_code=200, include_in_schema=False)
async def enroll_complete(
    data: JSONBody[Ceremony], request: HttpRequest, services: ServicesDep
) -> dict[str, str]:
    check_origin(request, services)
    done = await services.signin.enroll_complete(data.challenge_id, data.credential, None)
    return {"email": done.email}


@get("/approve/{code:str}", include_in_schema=False)
async def approve_page(code: Code, request: HttpRequest, services: ServicesDep) -> Any:
    """What the agent asks for, as the grant the tap would sign (RFC 8628's
    verification_uri_complete: the link the agent prints)."""
    person = await browser_person(request, services)
    if person is None:
        return _to_signin(f"/approve/{code}")
    try:
        req, grant = await request_grant(services, person, code, request)
    except VouchError as exc:
        return _message(request, person, services, exc.title, exc.detail, status=exc.status)
    models = [{"id": m, "name": services.catalog.display_name(m)} for m in grant.models]
    return _page(
        "approve.html",
        request,
        person,
        services,
        title=f"Approve {req.agent}",
        code=req.code,
        grant=grant,
        canonical=canonical_json(grant).decode(),
        models=models,
        lifetime=_duration(grant.ttl_s),
        address=req.address,
        asked=_when(req.created_at),
        expires=_when(req.expires_at),
    )


@post("/pages/approve/{code:str}/begin", status_code=200, include_in_schema=False)
async def approve_begin(
    code: Code, data: JSONBody[Empty], request: HttpRequest, services: ServicesDep
) -> dict[str, object]:
    """The API's begin for an agent's request (`vouch delegate approve CODE`), for a page."""
    person = await _page_person(request, services)
    req, grant = await request_grant(services, person, code, request)
    proposal = await services.delegations.begin(person, grant, request_id=req.id)
    return {
        "challenge_id": proposal.challenge_id,
        "grant_canonical": proposal.canonical,
        "options": proposal.options,
    }


@post("/pages/approve/complete", status_code=200, include_in_schema=False)
async def approve_complete(
    data: JSONBody[ApproveComplete], request: HttpRequest, services: ServicesDep
) -> dict[str, str]:
    """The tap over the grant the page showed: the agent's token goes to the agent."""
    person = await _page_person(request, services)
    done = await services.delegations.complete(
        person, data.challenge_id, data.credential, shown=data.grant
    )
    return {"delegation_id": done.record.id}


@post("/approve/{code:str}/deny", status_code=303, include_in_schema=False)
async def deny_page(
    code: Code,
    data: Annotated[dict[str, str], FormBody],
    request: HttpRequest,
    services: ServicesDep,
) -> Any:
    person = await _page_person(request, services, data.get(CSRF_FIELD, ""))
    try:
        await deny(services, person, code, request)
    except VouchError as exc:
        return _message(request, person, services, exc.title, exc.detail, status=exc.status)
    return Redirect(f"/delegations?denied={code}", status_code=303)


@get("/delegations", include_in_schema=False)
async def delegations_page(
    request: HttpRequest,
    services: ServicesDep,
    denied: Annotated[str | None, QueryParameter(max_length=16)] = None,
    revoked: Annotated[str | None, QueryParameter(max_length=64)] = None,
    aws: Annotated[str | None, QueryParameter(max_length=16)] = None,
) -> Any:
    """Your pending requests, your delegations (active and revoked, each active one
    revocable in one click) and those that expired within the last day."""
    person = await browser_person(request, services)
    if person is None:
        return _to_signin("/delegations")
    now = int(time.time())
    store = services.delegations.store
    live = await store.list(person.email, now=now)
    ended = [d for d in await store.ended(person.email, now=now) if d.expires_at <= now]
    listed = await with_states(services.revocations, [*live, *ended])
    rows = [
        {
            **msgspec.structs.asdict(d),
            "state": "expired" if d.state == "active" and d.expires_at <= now else d.state,
            "until": _when(d.expires_at),
            "models": [services.catalog.display_name(m) for m in d.models],
        }
        for d in sorted(listed, key=lambda d: d.created_at, reverse=True)
    ]
    notice = None
    if denied:
        notice = f"Denied request {denied}."
    elif revoked:
        notice = f"Revoked {revoked}: its next exchange is refused. {AWS_WORDS.get(aws or '', '')}"
    return _page(
        "delegations.html",
        request,
        person,
        services,
        title="My delegations",
        delegations=rows,
        pending=await services.requests.pending_of(person.email, now=now),
        notice=notice,
    )


@post("/delegations/{dlg_id:str}/revoke", status_code=303, include_in_schema=False)
async def revoke_page(
    dlg_id: Annotated[str, PathParameter(max_length=64)],
    data: Annotated[dict[str, str], FormBody],
    request: HttpRequest,
    services: ServicesDep,
) -> Any:
    """Revoke through the one Revoker, then say where AWS stands (waiting a little for it)."""
    person = await _page_person(request, services, data.get(CSRF_FIELD, ""))
    try:
        done = await services.revoker.revoke(
            person, Target("delegation", dlg_id), reason="revoked by user", now=time.time()
        )
    except VouchError as exc:
        return _message(request, person, services, exc.title, exc.detail, status=exc.status)
    aws = await services.aws_cut.wait(done.aws_version, 2.0)
    return Redirect(f"/delegations?revoked={dlg_id}&aws={aws}", status_code=303)


@get("/keys", include_in_schema=False)
async def keys_page(
    request: HttpRequest,
    services: ServicesDep,
    added: Annotated[str | None, QueryParameter(max_length=128)] = None,
) -> Any:
    """Your security keys; add another one, approved by a tap of a key you already have.
    `added` (set by the page after an addition) names the new key in a notice, when it is
    one of yours."""
    person = await browser_person(request, services)
    if person is None:
        return _to_signin("/keys")
    keys = [
        {
            **msgspec.structs.asdict(k),
            "added": _when(k.added_at),
            "used": _when(k.last_used) if k.last_used else "never",
        }
        for k in await keys_of(services, person.email)
    ]
    notice = None
    if added and any(k["cid"] == added for k in keys):
        notice = f"Added key {added}: it signs you in and approves your agents, as your others do."
    return _page(
        "keys.html", request, person, services, title="My security keys", keys=keys, notice=notice
    )


@post("/pages/keys/add/begin", status_code=200, include_in_schema=False)
async def add_key_begin(
    data: JSONBody[Empty], request: HttpRequest, services: ServicesDep
) -> dict[str, object]:
    """The API's enrollment without an invite (`POST /v1/enroll/begin` with a session): the
    new key's registration, and the action a key you already have must approve."""
    person = await _page_person(request, services)
    await services.limits.hit(
        "enroll", address=client_address(request), identity=limit_identity(person.email)
    )
    ceremony = await services.signin.enroll_begin(person.email, code=None, person=person)
    assert ceremony.approval is not None  # a session's enrollment always asks for one
    return {
        "challenge_id": ceremony.challenge_id,
        "options": ceremony.options,
        "approval": {
            "action": ceremony.approval.action,
            "action_canonical": ceremony.approval.canonical,
            "options": ceremony.approval.options,
        },
    }


class AddKeyComplete(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson
    """The new key's attestation."""
    approval: WebAuthnJson
    """A registered key's user-verified assertion over the add-key action."""


@post("/pages/keys/add/complete", status_code=200, include_in_schema=False)
async def add_key_complete(
    data: JSONBody[AddKeyComplete], request: HttpRequest, services: ServicesDep
) -> dict[str, str]:
    await _page_person(request, services)
    done = await services.signin.enroll_complete(data.challenge_id, data.credential, data.approval)
    return {"cid": done.cid}


USAGE_SINCE = ("1h", "24h", "7d", "30d")
"""The periods the usage page offers (the API takes any duration up to 400 days)."""
USAGE_BY: dict[str, str] = {"delegation": "Delegation", "agent": "Agent", "model": "Model"}
"""The groupings the usage page offers; admins looking at everyone's also get `person`."""


@get("/usage", include_in_schema=False)
async def usage_page(
    request: HttpRequest,
    services: ServicesDep,
    since: Annotated[str, QueryParameter(max_length=16)] = "24h",
    by: Annotated[By, QueryParameter()] = "delegation",
    everyone: Annotated[bool, QueryParameter(name="all")] = False,
) -> Any:
    """What your Bedrock calls and your agents' cost (an admin may ask for everyone's): the
    report `GET /v1/usage` gives, as a table, with its rate limit."""
    person = await browser_person(request, services)
    if person is None:
        return _to_signin("/usage")
    is_admin = services.org.is_admin(person.email)
    form: dict[str, Any] = {
        "since": since,
        "by": by,
        "everyone": everyone,
        "since_choices": USAGE_SINCE,
        "by_choices": {**USAGE_BY, "person": "Person"} if is_admin else USAGE_BY,
    }
    title = "Everyone's usage" if everyone else "My usage"
    try:
        report = await usage_report(
            services, person, since=since, by=by, everyone=everyone, address=client_address(request)
        )
    except VouchError as exc:
        if exc.extra.get("reason") == "usage-not-configured":
            return _page("usage.html", request, person, services, title=title, report=None, **form)
        return _message(request, person, services, exc.title, exc.detail, status=exc.status)
    # A person's own report leaves out the person column (it is them on every row).
    columns = KEY_COLUMNS[by]
    shown = [i for i, name in enumerate(columns) if everyone or by == "person" or name != "PERSON"]

    numbers = [n.capitalize() for n in NUMBER_COLUMNS] + [f"Cost ({report.currency})", "Unpriced"]

    def cells(row: Row) -> list[str]:
        keys = key_cells(by, row)
        if by == "model" and not row.foreign:  # MODEL is the only column
            keys = [services.catalog.display_name(keys[0])]
        return [keys[i] for i in shown] + number_cells(row)

    return _page(
        "usage.html",
        request,
        person,
        services,
        title=title,
        report=report,
        period=f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC",
        heads=[columns[i].capitalize() for i in shown],
        numbers=numbers,
        rows=[{"cells": cells(row), "foreign": row.foreign} for row in report.rows],
        total=number_cells(report.total),
        **form,
    )


async def _page_person(request: HttpRequest, services: Services, csrf: str | None = None) -> Person:
    """The signed-in person behind a state-changing page request, its CSRF token checked.

    Raises:
        PermissionDenied: a foreign origin, or a missing or wrong CSRF token.
        Unauthenticated: no live session in this browser.
    """
    check_csrf(request, services, csrf)
    person = await browser_person(request, services)
    if person is None:
        raise Unauthenticated("your browser session ended: sign in again")
    return person


ROUTES = [
    asset,
    signin_page,
    signin_begin,
    signin_complete,
    signout,
    enroll_page,
    enroll_begin,
    enroll_complete,
    approve_page,
    approve_begin,
    approve_complete,
    deny_page,
    delegations_page,
    revoke_page,
    keys_page,
    add_key_begin,
    add_key_complete,
    usage_page,
]
