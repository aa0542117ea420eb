"""Delegation: a person's session + a fresh key tap over the exact grant -> agent token.

propose (org policy) -> begin (a WebAuthn challenge that commits to the canonical grant) ->
complete (a user-verified tap by one of the person's keys) -> agent token + record.

At completion nothing is minted unless, at that moment, the agent's request (if any) is still
pending and taken for this approval, and the person still holds fewer than the org policy's
maximum of active delegations: both are claimed atomically in Redis before the token is
signed, and given back if anything after fails.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from broker.agent_token import Actor, mint_agent_token
from broker.assertion import WebAuthnJson
from broker.audit import Audit
from broker.challenges import Challenges, DelegateState
from broker.delegation_requests import DelegationRequest, DelegationRequests
from broker.delegation_store import Delegation, DelegationStore
from broker.errors import (
    AssertionRejected,
    ChallengeInvalid,
    Conflict,
    GrantInvalid,
    StoreUnavailable,
    from_policy,
)
from broker.grant import NONCE_BYTES, Grant, canonical_json, challenge_for
from broker.identity import grant_agent
from broker.keys import KID, KeyRing
from broker.keytap import KeyTaps
from broker.session import Person, amr_for
from policies import Authorized, OrgPolicy
from policies.budget import parse_budget
from policies.errors import PoliciesError
from policies.identity import agent_sub


@dataclass(frozen=True)
class Proposal:
    """A begin step's answer: what the tap will approve and the WebAuthn options."""

    challenge_id: str
    grant: Grant
    canonical: str
    options: WebAuthnJson


@dataclass(frozen=True)
class Approved:
    """A completed delegation: the agent token (given once), its record, the request it answers."""

    token: str
    record: Delegation
    request_id: str | None


@dataclass
class Delegations:
    org: OrgPolicy
    store: DelegationStore
    taps: KeyTaps
    challenges: Challenges
    audit: Audit
    keys: KeyRing
    issuer: str
    requests: DelegationRequests
    checks: Sequence[Callable[[tuple[str, ...], int], None]] = ()
    """Each credential provider's check that it can serve the grant at all (AWS: the session
    policy fits 2,048 characters), so nobody taps for a delegation no exchange could use."""
    priced: Callable[[str], bool] | None = None
    """Whether the price table prices a model: a budget is refused over a model it does not
    (its spend could never be counted, so the cap could never be reached)."""

    def propose(
        self,
        person: Person,
        *,
        agent: str,
        models: list[str],
        ttl_s: int,
        purpose: str = "",
        max_sts_s: int | None = None,
        rate: int | None = None,
        jkt: str | None = None,
        budget: str | None = None,
    ) -> Grant:
        """The canonical grant, if the org policy lets this person delegate it; bound to the
        agent key `jkt` (an RFC 7638 thumbprint) when given; capped at `budget` ("5.00").

        Raises:
            GrantInvalid: malformed agent name, TTL, limits, thumbprint or budget.
            PolicyDenied: outside what the org policy allows this person (an unbound grant
                where it requires key binding included).
        """
        if jkt is not None and KID.fullmatch(jkt) is None:
            raise GrantInvalid(
                "bind_key must be a key's RFC 7638 SHA-256 thumbprint (43 characters)"
            )
        if budget is not None:
            budget = budget.strip()
        allowed = self._authorize(
            person.email, grant_agent(agent), models, ttl_s, bound=jkt is not None, budget=budget
        )
        for check in self.checks:
            check(tuple(sorted(allowed.models)), int(time.time()) + ttl_s)
        if budget is not None and self.priced is not None:
            unpriced = sorted(m for m in allowed.models if not self.priced(m))
            if unpriced:
                raise GrantInvalid(
                    f"no price for {', '.join(unpriced)}: a budget cannot be enforced over it"
                    " (add its price to the price table, VOUCH_PRICES_FILE)"
                )
        return Grant(
            email=person.email,
            agent=agent,
            models=tuple(sorted(allowed.models)),
            ttl_s=ttl_s,
            purpose=purpose,
            max_sts_s=_narrow(max_sts_s, allowed.max_sts_s, "max_sts_s"),
            rate=_narrow(rate, allowed.exchanges_per_hour, "rate")
            if rate is not None
            else allowed.exchanges_per_hour,
            jkt=jkt,
            budget=budget,
        )

    async def begin(
        self, person: Person, grant: Grant, *, request_id: str | None = None
    ) -> Proposal:
        """Bind a WebAuthn challenge to the grant digest.

        Raises:
            Conflict: the person already holds the maximum of active delegations.
            PolicyDenied, GrantInvalid: the org policy no longer allows the grant.
        """
        limit = self._authorize(
            grant.email,
            grant.agent,
            list(grant.models),
            grant.ttl_s,
            bound=grant.jkt is not None,
            budget=grant.budget,
        )
        active = await self.store.count_active(person.email, now=int(time.time()))
        if active >= limit.max_active_delegations:
            raise Conflict(
                f"you hold {active} active delegations;"
                f" the org policy allows {limit.max_active_delegations}"
            )
        canonical = canonical_json(grant)
        challenge = challenge_for(canonical, secrets.token_bytes(NONCE_BYTES))
        keys = await self.taps.active_keys(person.email)
        # A delegation always needs user verification (docs/design.md invariant 4).
        options, fido = self.taps.begin(keys, uv=True, challenge=challenge)
        state = DelegateState(
            fido=fido, email=person.email, grant=canonical.decode(), request_id=request_id
        )
        challenge_id = await self.challenges.put("delegate", state)
        return Proposal(challenge_id, grant, canonical.decode(), options)

    async def complete(
        self,
        person: Person,
        challenge_id: str,
        response: WebAuthnJson,
        *,
        shown: str | None = None,
    ) -> Approved:
        """The agent token and its record, once a user-verified tap signed the grant.

        For an agent's request the token is sealed into the request for the polling agent.
        `shown` (the approval page's) is the canonical grant the person was shown: it must be
        the one the challenge commits to, or nothing is approved (the challenge is spent).

        Raises:
            ChallengeInvalid, AssertionRejected, KeyFlagged, PermissionDenied.
            PolicyDenied, GrantInvalid: the org policy no longer allows the grant.
            NotFound: the agent's request was decided (or expired) meanwhile.
            Conflict: the person already holds the maximum of active delegations.
        """
        state = await self.challenges.take("delegate", challenge_id, DelegateState)
        if state.email != person.email:
            raise ChallengeInvalid("this challenge belongs to another person's delegation")
        if shown is not None and shown != state.grant:
            raise GrantInvalid("the grant shown is not the grant this tap was asked to sign")
        tap = await self.taps.verify(state.fido, response, person.email)
        if not tap.user_verified:
            raise AssertionRejected("delegation needs user verification (PIN or biometric)")
        grant = msgspec.json.decode(state.grant, type=Grant)
        limit = self._authorize(
            grant.email,
            grant.agent,
            list(grant.models),
            grant.ttl_s,
            bound=grant.jkt is not None,
            budget=grant.budget,
        )
        actor = Actor(sub=grant.email, cid=tap.credential.cid, amr=amr_for(tap.user_verified))
        request = await self.requests.claim(state.request_id) if state.request_id else None
        record = None
        try:
            token, record = await self._issue(grant, actor, limit.max_active_delegations)
            await self.audit.record(
                "delegated",
                actor=person.email,
                dlg=record.id,
                agent=record.agent,
                models=list(record.models),
                expires_at=record.expires_at,
                cid=actor.cid,
                purpose=record.purpose,
                **({"jkt": record.jkt} if record.jkt else {}),
                **({"budget": record.budget} if record.budget else {}),
            )
            if request is not None:
                await self.requests.approve(request, token, record.id)
        except BaseException:
            await self._undo(record, request)
            raise
        return Approved(token, record, state.request_id)

    async def _issue(self, grant: Grant, actor: Actor, max_active: int) -> tuple[str, Delegation]:
        """Take a place among the person's active delegations, then sign the token for it.

        Raises:
            Conflict: no place left (nothing stored, nothing signed).
        """
        now = int(time.time())
        record = Delegation(
            id="dlg_" + secrets.token_urlsafe(12),
            email=grant.email,
            agent=grant.agent,
            sub=agent_sub(grant.agent, actor.sub),
            models=grant.models,
            cid=actor.cid,
            created_at=now,
            expires_at=now + grant.ttl_s,
            purpose=grant.purpose,
            max_sts_s=grant.max_sts_s,
            rate=grant.rate,
            jkt=grant.jkt,
            budget=grant.budget,
        )
        held = await self.store.add(record, max_active=max_active)
        if held is not None:
            raise Conflict(
                f"you hold {held} active delegations; the org policy allows {max_active}"
            )
        try:
            token, claims = mint_agent_token(
                agent=grant.agent,
                actor=actor,
                dlg_id=record.id,
                models=grant.models,
                ttl_s=grant.ttl_s,
                max_sts_s=grant.max_sts_s,
                rate=grant.rate,
                issuer=self.issuer,
                now=now,
                keys=self.keys,
                jkt=grant.jkt,
            )
        except BaseException:
            await self._undo(record, None)
            raise
        assert (claims.sub, claims.exp) == (record.sub, record.expires_at)  # one source of truth
        return token, record

    async def _undo(self, record: Delegation | None, request: DelegationRequest | None) -> None:
        """Give back what a failed approval took; best effort, as its own error is the answer.

        A record left behind holds a place until it expires but no token exists for it; a
        request left claimed reads as pending to its agent until it expires.
        """
        if record is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.store.discard(record)
        if request is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.requests.release(request.id)

    def _authorize(
        self,
        email: str,
        agent: str,
        models: list[str],
        ttl_s: int,
        *,
        bound: bool,
        budget: str | None = None,
    ) -> Authorized:
        """Raises: PolicyDenied or GrantInvalid (the org policy's answer as a problem)."""
        try:
            amount = parse_budget(budget) if budget is not None else None
            return self.org.authorize(email, agent, models, ttl_s, bound=bound, budget=amount)
        except PoliciesError as exc:
            raise from_policy(exc) from None


def _narrow(requested: int | None, ceiling: int | None, name: str) -> int | None:
    if requested is None:
        return None
    if requested <= 0 or (ceiling is not None and requested > ceiling):
        raise GrantInvalid(f"{name} must be positive and at most {ceiling}")
    return requested
