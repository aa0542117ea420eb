"""Delegation endpoints: propose + tap -> agent token; list; revoke."""

from __future__ import annotations

import time
import unicodedata
from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from broker.assertion import WebAuthnJson
from broker.auth import HttpRequest, PersonDep, ServicesDep, client_address
from broker.aws_cut import Status as AwsStatus
from broker.delegation_requests import DelegationRequest
from broker.delegation_states import ListedDelegation, with_states
from broker.delegation_store import Delegation
from broker.errors import GrantInvalid, InvalidRequest
from broker.grant import Grant
from broker.revoke import Target
from broker.routes.signin import ChallengeId
from broker.services import Services
from broker.session import Person

ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# Control (but tab), format (zero-width, bidi overrides) and line or paragraph separators:
# they forge log lines and approval screens, or hide what a person is asked to sign.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def hidden_character(text: str) -> str | None:
    """The first character of `text` that must not appear in free text, as U+XXXX."""
    for ch in text:
        if ch != "\t" and unicodedata.category(ch) in _HIDDEN:
            return f"U+{ord(ch):04X}"
    return None


def check_free_text(text: str, name: str, error: type[InvalidRequest] = GrantInvalid) -> None:
    """Raises: `error` (GrantInvalid by default) when `text` holds a hidden character."""
    found = hidden_character(text)
    if found is not None:
        raise error(
            f"{name} must not contain control, format or line-separator characters ({found})"
        )


class DelegationBegin(msgspec.Struct, forbid_unknown_fields=True):
    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None
    models: Annotated[list[ModelName], msgspec.Meta(max_length=20)] = []
    ttl_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 7200
    purpose: Annotated[str, msgspec.Meta(max_length=256)] = ""
    max_sts_s: Annotated[int, msgspec.Meta(ge=900, le=43200)] | None = None
    rate: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    request_code: Annotated[str, msgspec.Meta(min_length=4, max_length=16)] | None = None
    bind_key: Annotated[str, msgspec.Meta(min_length=43, max_length=43)] | None = None
    """The agent key's RFC 7638 thumbprint: the token is bound to it (DPoP)."""
    budget: Annotated[str, msgspec.Meta(min_length=1, max_length=16)] | None = None
    """The most the delegation may spend ("5.00", the price table's currency): once spent,
    it is revoked (reason budget-exceeded)."""


class DelegationProposal(msgspec.Struct):
    challenge_id: str
    grant: Grant
    grant_canonical: str
    options: WebAuthnJson


class DelegationComplete(msgspec.Struct, forbid_unknown_fields=True):
    challenge_id: ChallengeId
    credential: WebAuthnJson


class AgentToken(msgspec.Struct):
    delegation: Delegation
    token: str | None = None
    request_id: str | None = None


async def request_grant(
    services: Services, person: Person, code: str, request: HttpRequest
) -> tuple[DelegationRequest, Grant]:
    """An agent's pending request (by user code) and the grant approving it would make: what
    `vouch delegate approve` and the approval page both show and have the tap sign.

    Raises: RateLimited, NotFound (unknown, decided or expired code), PermissionDenied
        (another person's request), PolicyDenied, GrantInvalid.
    """
    await services.limits.hit("approval", address=client_address(request), identity=person.email)
    req = await services.requests.for_approval(person, code)
    grant = services.delegations.propose(
        person,
        agent=req.agent,
        models=req.models,
        ttl_s=req.ttl_s,
        purpose=req.message,
        jkt=req.jkt,
        budget=req.budget,
    )
    return req, grant


@post("/v1/delegations/begin", status_code=200, tags=["delegation"])
async def delegation_begin(
    data: JSONBody[DelegationBegin],
    services: ServicesDep,
    person: PersonDep,
    request: HttpRequest,
) -> DelegationProposal:
    """Check a grant (or an agent's request, by user code) against the org policy.

    The WebAuthn challenge commits to the grant's canonical form, shown in the answer.
    """
    request_id = None
    if data.request_code:
        req, grant = await request_grant(services, person, data.request_code, request)
        request_id = req.id
    else:
        check_free_text(data.purpose, "purpose")
        grant = services.delegations.propose(
            person,
            agent=data.agent or "",
            models=data.models,
            ttl_s=data.ttl_s,
            purpose=data.purpose,
            max_sts_s=data.max_sts_s,
            rate=data.rate,
            jkt=data.bind_key,
            budget=data.budget,
        )
    proposal = await services.delegations.begin(person, grant, request_id=request_id)
    return DelegationProposal(
        proposal.challenge_id,
        proposal.grant,
        proposal.canonical,
        proposal.options,
    )


@post("/v1/delegations/complete", status_code=201, tags=["delegation"])
async def delegation_complete(
    data: JSONBody[DelegationComplete], services: ServicesDep, person: PersonDep
) -> AgentToken:
    """A user-verified assertion over the grant's challenge -> the agent token.

    For an agent's request the token goes to the polling agent, not to the approver.
    """
    done = await services.delegations.complete(person, data.challenge_id, data.credential)
    if done.request_id:
        return AgentToken(done.record, request_id=done.request_id)
    return AgentToken(done.record, token=done.token)


@get("/v1/delegations", tags=["delegation"])
async def list_delegations(
    services: ServicesDep,
    person: PersonDep,
    all_people: Annotated[bool, QueryParameter(name="all")] = False,
) -> dict[str, list[ListedDelegation]]:
    """Your unexpired delegations, each with its `state` (active or revoked, and by what);
    an admin may ask for everybody's with ?all=true."""
    everyone = all_people and services.org.is_admin(person.email)
    listed = await services.delegations.store.list(
        None if everyone else person.email, now=int(time.time())
    )
    return {"delegations": await with_states(services.revocations, listed)}


class RevokedDelegation(Delegation, frozen=True, kw_only=True):
    aws_sessions: AwsStatus
    """"cut" once AWS denies its live sessions, "pending" until then, "disabled" without."""


@delete("/v1/delegations/{dlg_id:str}", status_code=200, tags=["delegation"])
async def revoke_delegation(
    dlg_id: Annotated[str, PathParameter(max_length=64)],
    services: ServicesDep,
    person: PersonDep,
    wait_s: Annotated[float, QueryParameter(ge=0, le=30)] = 0,
) -> RevokedDelegation:
    """Revoke a delegation you made (admins: anyone's). Enforced on the next exchange; AWS
    denies its live sessions once `aws_sessions` is "cut" (wait up to `wait_s` for it)."""
    done = await services.revoker.revoke(
        person, Target("delegation", dlg_id), reason="revoked by user", now=time.time()
    )
    assert done.delegation is not None  # a delegation target answers with its record
    aws = await services.aws_cut.wait(done.aws_version, wait_s)
    return RevokedDelegation(**msgspec.structs.asdict(done.delegation), aws_sessions=aws)


ROUTES = [delegation_begin, delegation_complete, list_delegations, revoke_delegation]
