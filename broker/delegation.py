"""Delegation: a person's session + a fresh key tap over the exact grant -> agent token.

Records: ``vouch:dlg:<id>`` (JSON, expires with the delegation) and the sorted sets
``vouch:user:<email>:dlgs`` and ``vouch:dlgs`` (score = expiry) for listing and counting.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis

from broker.audit import Audit
from broker.challenges import Challenges
from broker.errors import (
    AssertionRejected,
    ChallengeInvalid,
    Conflict,
    GrantInvalid,
    NotFound,
    PolicyDenied,
)
from broker.grant import (
    AGENT_NAME,
    NONCE_BYTES,
    Grant,
    agent_sub,
    canonical_json,
    challenge_for,
)
from broker.keys import KeyRing
from broker.revocation import Revocations
from broker.session import Person
from broker.signin import SignIn
from broker.store import PREFIX, guard, read_many, text
from broker.tokens import AGENT_TYP, mint
from policies import OrgPolicy
from policies.errors import GrantDenied, PoliciesError


class Delegation(msgspec.Struct, frozen=True, kw_only=True):
    """What is kept about a delegation for listing and revocation (never the token)."""

    id: str
    email: str
    agent: str
    sub: str
    models: tuple[str, ...]
    cid: str
    created_at: int
    expires_at: int
    purpose: str = ""
    max_sts_s: int | None = None
    rate: int | None = None
    revoked_at: int | None = None
    revoked_by: str | None = None


@dataclass(frozen=True)
class Proposal:
    """A begin step's answer: what the tap will approve and the WebAuthn options."""

    challenge_id: str
    grant: Grant
    canonical: str
    options: dict[str, Any]


@dataclass
class Delegations:
    redis: aioredis.Redis
    org: OrgPolicy
    signin: SignIn
    challenges: Challenges
    revocations: Revocations
    audit: Audit
    keys: KeyRing
    issuer: str

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
    ) -> Grant:
        """The canonical grant, if the org policy lets this person delegate it.

        Raises:
            GrantInvalid: malformed agent name, TTL or limits.
            PolicyDenied: outside what the org policy allows this person.
        """
        if not AGENT_NAME.fullmatch(agent):
            raise GrantInvalid("agent name must match [a-z0-9][a-z0-9-]{0,31}")
        try:
            allowed = self.org.authorize(person.email, agent, models, ttl_s)
        except PoliciesError as exc:
            raise policy_error(exc) from None
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
        )

    async def begin(
        self, person: Person, grant: Grant, *, extra: dict[str, Any] | None = None
    ) -> Proposal:
        """Bind a WebAuthn challenge to the grant digest.

        Raises:
            Conflict: the person already holds the maximum of active delegations.
        """
        limit = self.org.authorize(grant.email, grant.agent, grant.models, grant.ttl_s)
        await self._check_active_count(person.email, limit.max_active_delegations)
        creds = [
            c.data
            for c in await self.signin.registry.credentials_of(person.email)
            if c.state == "active"
        ]
        canonical = canonical_json(grant)
        challenge = challenge_for(canonical, secrets.token_bytes(NONCE_BYTES))
        # A delegation always needs user verification (DESIGN.md invariant 4).
        options, fido_state = self.signin.rp.authenticate_begin(creds, uv=True, challenge=challenge)
        state = {
            "fido": fido_state,
            "email": person.email,
            "grant": canonical.decode(),
            **(extra or {}),
        }
        challenge_id = await self.challenges.put("delegate", state)
        return Proposal(challenge_id, grant, canonical.decode(), options)

    async def complete(
        self, person: Person, challenge_id: str, response: Any
    ) -> tuple[str, Delegation, dict[str, Any]]:
        """The agent token, its record, and the challenge state (for request approval).

        Raises:
            ChallengeInvalid, AssertionRejected, KeyFlagged, PermissionDenied.
        """
        state = await self.challenges.take("delegate", challenge_id)
        if state["email"] != person.email:
            raise ChallengeInvalid("this challenge belongs to another person's delegation")
        cred, asserted = await self.signin.verify_assertion(state["fido"], response, person.email)
        if not asserted.user_verified:
            raise AssertionRejected("delegation needs user verification (PIN or biometric)")
        grant = msgspec.json.decode(state["grant"], type=Grant)
        token, record = self._mint(grant, cred.cid, person.amr)
        await self._save(record)
        await self.audit.record(
            "delegated",
            actor=person.email,
            dlg=record.id,
            agent=record.agent,
            models=list(record.models),
            expires_at=record.expires_at,
            cid=cred.cid,
            purpose=record.purpose,
        )
        return token, record, state

    def _mint(self, grant: Grant, cid: str, amr: tuple[str, ...]) -> tuple[str, Delegation]:
        now = int(time.time())
        dlg_id = "dlg_" + secrets.token_urlsafe(12)
        sub = agent_sub(grant.agent, grant.email)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + grant.ttl_s,
            "jti": secrets.token_urlsafe(16),
            "dlg": dlg_id,
            "models": list(grant.models),
            "act": {"sub": grant.email, "cid": cid, "amr": ["hwk", "uv"]},
        }
        if grant.max_sts_s is not None:
            claims["max_sts_s"] = grant.max_sts_s
        if grant.rate is not None:
            claims["rate"] = grant.rate
        record = Delegation(
            id=dlg_id,
            email=grant.email,
            agent=grant.agent,
            sub=sub,
            models=grant.models,
            cid=cid,
            created_at=now,
            expires_at=now + grant.ttl_s,
            purpose=grant.purpose,
            max_sts_s=grant.max_sts_s,
            rate=grant.rate,
        )
        return mint(claims, typ=AGENT_TYP, keys=self.keys), record

    async def _save(self, record: Delegation) -> None:
        ttl = record.expires_at - record.created_at + 60
        async with guard("recording the delegation"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(f"{PREFIX}dlg:{record.id}", msgspec.json.encode(record), ex=ttl)
            pipe.zadd(f"{PREFIX}user:{record.email}:dlgs", {record.id: record.expires_at})
            pipe.zadd(f"{PREFIX}dlgs", {record.id: record.expires_at})
            # Prune expired ids as new ones arrive so the global index stays bounded.
            pipe.zremrangebyscore(f"{PREFIX}dlgs", 0, record.created_at)
            await pipe.execute()

    async def _check_active_count(self, email: str, limit: int) -> None:
        key = f"{PREFIX}user:{email}:dlgs"
        async with guard("counting delegations"):
            await self.redis.zremrangebyscore(key, 0, int(time.time()))
            active = await self.redis.zcard(key)
        if active >= limit:
            raise Conflict(f"you hold {active} active delegations; the org policy allows {limit}")

    async def get(self, dlg_id: str) -> Delegation | None:
        async with guard("reading a delegation"):
            body = await self.redis.get(f"{PREFIX}dlg:{dlg_id}")
        return msgspec.json.decode(body, type=Delegation) if body else None

    async def list(self, email: str | None, *, limit: int = 200) -> list[Delegation]:
        """Active (unexpired) delegations of one person, or everybody's when email is None."""
        key = f"{PREFIX}user:{email}:dlgs" if email else f"{PREFIX}dlgs"
        now = int(time.time())
        async with guard("listing delegations"):
            await self.redis.zremrangebyscore(key, 0, now)
            ids: Any = await self.redis.zrange(key, 0, limit - 1)
            bodies = await read_many(self.redis, [f"{PREFIX}dlg:{text(i)}" for i in ids])
        return [msgspec.json.decode(b, type=Delegation) for b in bodies if b]

    async def revoke(
        self, person: Person, dlg_id: str, *, is_admin: bool, reason: str
    ) -> Delegation:
        """Revoke one delegation: its owner or an admin.

        Raises:
            NotFound: no such (unexpired) delegation, or not visible to this person.
        """
        record = await self.get(dlg_id)
        if record is None or (record.email != person.email and not is_admin):
            raise NotFound(f"no active delegation {dlg_id!r}")
        now = time.time()
        await self.revocations.revoke_delegation(dlg_id, expires_at=record.expires_at, now=now)
        revoked = msgspec.structs.replace(record, revoked_at=int(now), revoked_by=person.email)
        ttl = max(1, record.expires_at - int(now) + 60)
        async with guard("recording the revocation"):
            await self.redis.set(f"{PREFIX}dlg:{dlg_id}", msgspec.json.encode(revoked), ex=ttl)
        await self.audit.record(
            "revoked", actor=person.email, handle="delegation", subject=dlg_id, reason=reason
        )
        return revoked


def _narrow(requested: int | None, ceiling: int | None, name: str) -> int | None:
    if requested is None:
        return None
    if requested <= 0 or (ceiling is not None and requested > ceiling):
        raise GrantInvalid(f"{name} must be positive and at most {ceiling}")
    return requested


def policy_error(exc: PoliciesError) -> PolicyDenied | GrantInvalid:
    """A policies error as a problem: refusals are 403, malformed grants 400."""
    if isinstance(exc, GrantDenied):
        return PolicyDenied(str(exc), reason=exc.check)
    return GrantInvalid(str(exc), reason=getattr(exc, "code", "grant-invalid"))
