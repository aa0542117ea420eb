"""Agent-initiated delegation requests: create, poll, deny."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get, post
from litestar.params import JSONBody, PathParameter

from broker.auth import HttpRequest, PersonDep, ServicesDep, bearer, client_address
from broker.delegation_requests import POLL_INTERVAL_S
from broker.errors import from_policy
from broker.identity import grant_agent, limit_identity, person_email
from broker.routes.delegations import ModelName, check_free_text
from policies.errors import PoliciesError


class RequestCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    models: Annotated[list[ModelName], msgspec.Meta(min_length=1, max_length=20)]
    ttl_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 7200
    message: Annotated[str, msgspec.Meta(max_length=256)] = ""


class RequestCreated(msgspec.Struct):
    request_id: str
    user_code: str
    poll_secret: str
    expires_at: int
    interval: int


class RequestStatus(msgspec.Struct, omit_defaults=True):
    status: str
    interval: int
    token: str | None = None
    delegation_id: str | None = None


class RequestDeny(msgspec.Struct, forbid_unknown_fields=True):
    user_code: Annotated[str, msgspec.Meta(min_length=4, max_length=16)]


@post("/v1/delegation-requests", status_code=201, tags=["delegation"])
async def create_request(
    data: JSONBody[RequestCreate], services: ServicesDep, request: HttpRequest
) -> RequestCreated:
    """An agent asks a person for a delegation; relay the user code to that person."""
    await services.limits.hit(
        "request", address=client_address(request), identity=limit_identity(data.email)
    )
    grant_agent(data.agent)
    check_free_text(data.message, "message")
    try:  # refuse what could never be granted now, not when the person tries to approve it
        for name in data.models:
            services.catalog.resolve(name)
    except PoliciesError as exc:
        raise from_policy(exc) from None
    created = await services.requests.create(
        email=person_email(data.email),
        agent=data.agent,
        models=data.models,
        ttl_s=data.ttl_s,
        message=data.message,
    )
    return RequestCreated(
        created.id, created.user_code, created.poll_secret, created.expires_at, created.interval
    )


@get("/v1/delegation-requests/{req_id:str}", tags=["delegation"])
async def poll_request(
    req_id: Annotated[str, PathParameter(max_length=64)],
    request: HttpRequest,
    services: ServicesDep,
) -> RequestStatus:
    """The agent polls with its poll secret as bearer token; the token arrives once."""
    await services.limits.hit("poll", address=client_address(request), identity=req_id)
    req = await services.requests.poll(req_id, bearer(request))
    return RequestStatus(
        req.status, POLL_INTERVAL_S, token=req.token, delegation_id=req.delegation_id
    )


@post("/v1/delegation-requests/deny", status_code=200, tags=["delegation"])
async def deny_request(
    data: JSONBody[RequestDeny],
    services: ServicesDep,
    person: PersonDep,
    request: HttpRequest,
) -> RequestStatus:
    """The person refuses an agent's request."""
    await services.limits.hit("approval", address=client_address(request), identity=person.email)
    req = await services.requests.deny(person, data.user_code)
    await services.audit.record(
        "request_denied", actor=person.email, agent=req.agent, subject=req.id
    )
    return RequestStatus(req.status, POLL_INTERVAL_S)


ROUTES = [create_request, poll_request, deny_request]
