"""The one revocation service: every path that ends someone's power goes through `revoke`.

People revoke their own delegations; admins revoke anything (a delegation, an agent, a
person, a security key). A revocation is recorded in Redis (enforced on the next request on
every replica), audited with who did it and why, evicts cached credentials it names, and is
noted for AWS (`broker.aws_cut`), which then denies the sessions it names on its own.
Revoking a person also cancels their unused invites; their pending ceremonies fail at
completion, which re-checks the person (docs/design.md invariant 11).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from broker.audit import Audit
from broker.authorize import Principal
from broker.aws_cut import AwsCut
from broker.credential_cache import CachedProvider
from broker.delegation_store import Delegation, DelegationStore
from broker.errors import NotFound, PermissionDenied
from broker.identity import agent_handle, person_email
from broker.invites import Invites
from broker.registry import Registry
from broker.revocation import Reason, Revocations
from broker.session import Person
from policies import OrgPolicy

Kind = Literal["delegation", "agent", "user", "credential"]


class Target(msgspec.Struct, frozen=True):
    """What to revoke: a delegation id, an agent sub, a person's email or a key's cid."""

    kind: Kind
    value: str


class Revoked(msgspec.Struct, frozen=True):
    target: Target
    """As recorded: emails and agent subs in their one normal spelling."""
    revoked_at: float
    aws_version: int
    """The AWS cut's version that denies it (`AwsCut.status`)."""
    delegation: Delegation | None = None
    """The revoked delegation's record, when the target was one."""


@dataclass
class Revoker:
    org: OrgPolicy
    registry: Registry
    invites: Invites
    delegations: DelegationStore
    revocations: Revocations
    audit: Audit
    caches: Sequence[CachedProvider]
    aws: AwsCut

    async def revoke(self, actor: Person, target: Target, *, reason: str, now: float) -> Revoked:
        """Revoke `target` on behalf of `actor`.

        Raises:
            PermissionDenied: only admins revoke agents, people and keys.
            NotFound: no such delegation visible to the actor, or no such key.
            InvalidRequest: a malformed email or agent sub.
            StoreUnavailable: not recorded (safe to retry).
        """
        if target.kind == "delegation":
            return await self._delegation(actor, target, reason=reason, now=now)
        if not self.org.is_admin(actor.email):
            raise PermissionDenied("this needs an admin named in the org policy")
        cancelled: list[str] = []
        if target.kind == "user":
            target = Target("user", person_email(target.value))
            await self.registry.disable_user(target.value)
            cancelled = await self.invites.cancel_for(target.value)
        elif target.kind == "agent":
            target = Target("agent", agent_handle(target.value))
        elif not await self.registry.set_state(target.value, "revoked"):
            raise NotFound(f"no registered security key {target.value!r}")
        kind = {"agent": "agent", "user": "user", "credential": "cred"}[target.kind]
        why = Reason(actor.email, reason)
        await self.revocations.revoke_not_before(kind, target.value, now=now, why=why)
        version = await self.aws.record(target.kind, target.value, now)
        await self._recorded(actor, target, reason, _names(target), invites=cancelled or None)
        return Revoked(target, now, version)

    async def _delegation(
        self, actor: Person, target: Target, *, reason: str, now: float
    ) -> Revoked:
        record = await self.delegations.get(target.value)
        if record is None or (record.email != actor.email and not self.org.is_admin(actor.email)):
            raise NotFound(f"no active delegation {target.value!r}")
        await self.revocations.revoke_delegation(record.id, expires_at=record.expires_at, now=now)
        revoked = msgspec.structs.replace(
            record, revoked_at=int(now), revoked_by=actor.email, revoked_reason=reason
        )
        await self.delegations.replace(revoked, now=int(now))
        version = await self.aws.record("delegation", record.id, now)
        await self._recorded(actor, target, reason, _names(target))
        return Revoked(target, now, version, revoked)

    async def _recorded(
        self,
        actor: Person,
        target: Target,
        reason: str,
        names: Callable[[Principal], bool],
        *,
        invites: list[str] | None = None,
    ) -> None:
        for cache in self.caches:
            cache.evict(names)
        await self.audit.record(
            "revoked",
            actor=actor.email,
            handle=target.kind,
            subject=target.value,
            reason=reason,
            cancelled_invites=invites,
        )


def _names(target: Target) -> Callable[[Principal], bool]:
    """Whether a principal's cached credentials belong to what `target` revokes."""
    value = target.value
    match target.kind:
        case "delegation":
            return lambda p: p.id == value
        case "agent":
            return lambda p: p.sub == value
        case "user":
            return lambda p: p.email == value
        case "credential":
            return lambda p: p.key == value
