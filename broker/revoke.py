"""The one revocation service: every path that ends someone's power goes through `revoke`.

People revoke their own delegations; admins revoke anything (a delegation, an agent, a
person, a security key). A revocation is recorded in Redis (enforced on the next request on
every replica), audited with who did it and why, evicts cached credentials it names, and is
noted for AWS (`broker.aws_cut`), which then denies the sessions it names on its own.
Revoking a person also cancels their unused invites; their pending ceremonies fail at
completion, which re-checks the person (docs/design.md invariant 11). The broker itself
revokes a delegation whose budget is spent (`revoke_spent`, actor `vouch-broker`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

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
from broker.revocation import (
    Reason,
    Revocations,
    budget_mark,
    not_before_key,
    reason_key,
)
from broker.session import Person
from policies import OrgPolicy

Kind = Literal["delegation", "agent", "user", "credential"]
SYSTEM_ACTOR = "vouch-broker"
"""Who the audit names for what the broker revokes on its own (a spent budget)."""
BUDGET_EXCEEDED = "budget-exceeded"
"""The reason of a revocation for a spent budget."""


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
    already_revoked: bool = False
    """The target was revoked before: nothing changed, `revoked_at` is that revocation's."""


class Standing(NamedTuple):
    """A revocation already in force: when, and by whom."""

    revoked_at: float
    by: str | None


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
        if target.kind == "user":
            target = Target("user", person_email(target.value))
        elif target.kind == "agent":
            target = Target("agent", agent_handle(target.value))
        standing = await self._standing(target)
        if standing is not None:
            return await self._again(actor.email, target, reason, standing)
        cancelled: list[str] = []
        if target.kind == "user":
            await self.registry.disable_user(target.value)
            cancelled = await self.invites.cancel_for(target.value)
        elif target.kind == "credential" and not await self.registry.set_state(
            target.value, "revoked"
        ):
            raise NotFound(f"no registered security key {target.value!r}")
        kind = _KINDS[target.kind]
        why = Reason(actor.email, reason)
        await self.revocations.revoke_not_before(kind, target.value, now=now, why=why)
        version = await self.aws.record(target.kind, target.value, now)
        await self._recorded(actor.email, target, reason, _names(target), invites=cancelled or None)
        return Revoked(target, now, version)

    async def _standing(self, target: Target) -> Standing | None:
        """The revocation of a person or a key still in force, if any.

        An agent has none: revoking it again also ends the tokens issued to it since.
        A person stays revoked until reinstated, a key for good; their "not before" says
        when and by whom while it lives (as long as the longest token could).
        """
        if target.kind == "agent":
            return None
        kind = _KINDS[target.kind]
        if target.kind == "user":
            since = await self.registry.disabled_since(target.value)
            if since is None:
                return None
        else:
            cred = await self.registry.get(target.value)
            if cred is None or cred.state != "revoked":
                return None
            since = None
        at, why = await self.revocations.read(
            [not_before_key(kind, target.value), reason_key(kind, target.value)]
        )
        if at is None and since is None:  # a key revoked with its person, not by itself
            return None
        reason = msgspec.json.decode(why, type=Reason) if why is not None else None
        by = reason.by if reason is not None else None
        return Standing(float(at) if at is not None else float(since or 0), by)

    async def _again(self, actor: str, target: Target, reason: str, standing: Standing) -> Revoked:
        """Revoking what is already revoked changes nothing: the first revocation's time,
        actor and reason stand; the attempt is audited as `already_revoked`."""
        await self.audit.record(
            "already_revoked",
            actor=actor,
            handle=target.kind,
            subject=target.value,
            reason=reason,
            revoked_by=standing.by,
            revoked_at=int(standing.revoked_at),
        )
        return Revoked(target, standing.revoked_at, await self.aws.latest(), already_revoked=True)

    async def revoke_spent(self, dlg_id: str, *, spent: str, now: float) -> Revoked:
        """Revoke a delegation whose spend (`spent`, decimal text) reached its budget, as the
        broker itself (reason budget-exceeded): its next exchange is refused with
        `budget-exceeded`, and AWS denies its sessions where the cut is configured.

        Raises:
            NotFound: no such delegation, no budget on it, or it has expired.
            StoreUnavailable: not recorded (safe to retry).
        """
        record = await self.delegations.get(dlg_id)
        if record is None or record.budget is None:
            raise NotFound(f"no delegation {dlg_id!r} with a budget")
        mark = budget_mark(spent, record.budget)
        return await self._revoke_record(
            SYSTEM_ACTOR, record, reason=BUDGET_EXCEEDED, now=now, mark=mark
        )

    async def _delegation(
        self, actor: Person, target: Target, *, reason: str, now: float
    ) -> Revoked:
        record = await self.delegations.get(target.value)
        if record is None or (record.email != actor.email and not self.org.is_admin(actor.email)):
            raise NotFound(f"no active delegation {target.value!r}")
        return await self._revoke_record(actor.email, record, reason=reason, now=now)

    async def _revoke_record(
        self, actor: str, record: Delegation, *, reason: str, now: float, mark: bytes = b"1"
    ) -> Revoked:
        target = Target("delegation", record.id)
        if record.expires_at <= now and record.revoked_at is None:  # kept only to be listed
            raise NotFound(f"no active delegation {target.value!r}: it has expired")
        if record.revoked_at is not None:
            again = await self._again(
                actor, target, reason, Standing(record.revoked_at, record.revoked_by)
            )
            return msgspec.structs.replace(again, delegation=record)
        await self.revocations.revoke_delegation(
            record.id, expires_at=record.expires_at, now=now, mark=mark
        )
        revoked = msgspec.structs.replace(
            record, revoked_at=int(now), revoked_by=actor, revoked_reason=reason
        )
        await self.delegations.replace(revoked, now=int(now))
        version = await self.aws.record("delegation", record.id, now)
        await self._recorded(actor, target, reason, _names(target))
        return Revoked(target, now, version, revoked)

    async def _recorded(
        self,
        actor: str,
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
            actor=actor,
            handle=target.kind,
            subject=target.value,
            reason=reason,
            cancelled_invites=invites,
        )


_KINDS = {"agent": "agent", "user": "user", "credential": "cred"}
"""A target's kind as revocation handles name it."""


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
