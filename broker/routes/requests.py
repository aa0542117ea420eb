"""Agent-initiated delegation requests: create, poll, list (the person's pending), deny."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from litestar import get, post
from litestar.params import JSONBody, PathParameter

from broker.auth import HttpRequest, PersonDep, ServicesDep, bearer, client_address
from broker.delegation_requests import POLL_INTERVAL_S
from broker.dpop import agent_key_thumbprint
from broker.errors import InvalidRequest, from_policy
from broker.identity import grant_agent, limit_identity, person_email
from broker.routes.delegations import ModelName, check_free_text
from broker.services import Services
from broker.session import Person
from policies.budget import parse_budget
from policies.errors import PoliciesError


class RequestCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    models: Annotated[list[ModelName], msgspec.Meta(min_length=1, max_length=20)]
    ttl_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 7200
    message: Annotated[str, msgspec.Meta(max_length=256)] = ""
    jwk: (
        Annotated[
            dict[str, Annotated[str, msgspec.Meta(max_length=1024)]], msgspec.Meta(max_length=16)
        ]
        | None
    ) = None
    """The agent's public key (JWK): the token is bound to it (DPoP, RFC 9449)."""
    budget: Annotated[str, msgspec.Meta(min_length=1, max_length=16)] | None = None
    """The most the delegation may spend ("5.00", the price table's currency)."""


class RequestCreated(msgspec.Struct):
    request_id: str
    user_code: str
    poll_secret: str
    expires_at: int
    interval: int
    verification_uri: str
    """Where the person approves: the broker's sign-in page (RFC 8628)."""
    verification_uri_complete: str
    """The approval page of this request (`/approve/<user code>`): the link to relay."""


class RequestStatus(msgspec.Struct, omit_defaults=True):
    status: str
    interval: int
    token: str | None = None
    delegation_id: str | None = None


class PendingRequest(msgspec.Struct, omit_defaults=True):
    """A request waiting for the person; `message` and `agent` are the agent's own words;
    `jkt` (only when the agent sent a key) the thumbprint its token will be bound to."""

    user_code: str
    agent: str
    models: list[str]
    ttl_s: int
    message: str
    address: str
    created_at: int
    expires_at: int
    jkt: str | None = None
    budget: str | None = None
    """The budget the agent asked for ("5.00"); absent: none."""


class PendingRequests(msgspec.Struct):
    requests: list[PendingRequest]


class RequestDeny(msgspec.Struct, forbid_unknown_fields=True):
    user_code: Annotated[str, msgspec.Meta(min_length=4, max_length=16)]


@post("/v1/delegation-requests", status_code=201, tags=["delegation"])
async def create_request(
    data: JSONBody[RequestCreate], services: ServicesDep, request: HttpRequest
) -> RequestCreated:
    """An agent asks a person for a delegation; relay the user code to that person.

    A request the org policy could never grant that email (models, TTL, or nobody there may
    delegate) is refused now. Only the policy is consulted, never who is registered, so a
    known and an unknown email get the same answer.
    """
    address = client_address(request)
    await services.limits.hit("request", address=address, identity=limit_identity(data.email))
    grant_agent(data.agent)
    check_free_text(data.message, "message")
    jkt = None
    if data.jwk is not None:
        try:
            jkt = agent_key_thumbprint(data.jwk)
        except ValueError as exc:
            raise InvalidRequest(f"jwk: {exc}") from None
    try:  # refuse what could never be granted now, not when the person tries to approve it
        for name in data.models:
            services.catalog.resolve(name)
        email = person_email(data.email)
        budget = parse_budget(data.budget) if data.budget is not None else None
        allowed = services.org.authorize(
            email, data.agent, data.models, data.ttl_s, bound=jkt is not None, budget=budget
        )
    except PoliciesError as exc:
        raise from_policy(exc) from None
    created = await services.requests.create(
        email=email,
        agent=data.agent,
        models=list(allowed.models),
        ttl_s=data.ttl_s,
        message=data.message,
        address=address,
        jkt=jkt,
        budget=data.budget.strip() if data.budget is not None else None,
    )
    public = services.settings.issuer.rstrip("/")
    return RequestCreated(
        created.id,
        created.user_code,
        created.poll_secret,
        created.expires_at,
        created.interval,
        verification_uri=f"{public}/signin",
        verification_uri_complete=f"{public}/approve/{created.user_code}",
    )


@get("/v1/delegation-requests", tags=["delegation"])
async def list_requests(services: ServicesDep, person: PersonDep) -> PendingRequests:
    """Your agents' requests waiting for an answer: deny the ones you do not recognise."""
    pending = await services.requests.pending_of(person.email, now=int(time.time()))
    return PendingRequests(
        [
            PendingRequest(
                r.code,
                r.agent,
                r.models,
                r.ttl_s,
                r.message,
                r.address,
                r.created_at,
                r.expires_at,
                r.jkt,
                r.budget,
            )
            for r in pending
        ]
    )


@get("/v1/delegation-requests/{req_id:str}", tags=["delegation"])
async def poll_request(
    req_id: Annotated[str, PathParameter(max_length=64)],
    request: HttpRequest,
    services: ServicesDep,
) -> RequestStatus:
    """The agent polls with its poll secret as bearer token; the token arrives once."""
    await services.limits.hit("poll", address=client_address(request), identity=req_id)
    polled = await services.requests.poll(req_id, bearer(request))
    return RequestStatus(
        polled.status, POLL_INTERVAL_S, token=polled.token, delegation_id=polled.delegation_id
    )


@post("/v1/delegation-requests/deny", status_code=200, tags=["delegation"])
async def deny_request(
    data: JSONBody[RequestDeny],
    services: ServicesDep,
    person: PersonDep,
    request: HttpRequest,
) -> RequestStatus:
    """The person refuses an agent's request."""
    await deny(services, person, data.user_code, request)
    return RequestStatus("denied", POLL_INTERVAL_S)


async def deny(services: Services, person: Person, code: str, request: HttpRequest) -> None:
    """Refuse the request behind `code` (the API's and the approval page's one way).

    Raises: RateLimited, NotFound, PermissionDenied.
    """
    await services.limits.hit("approval", address=client_address(request), identity=person.email)
    req = await services.requests.deny(person, code)
    await services.audit.record(
        "request_denied", actor=person.email, agent=req.agent, subject=req.id
    )


ROUTES = [create_request, list_requests, poll_request, deny_request]
