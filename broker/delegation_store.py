"""Delegation records in Redis: the only module that knows their key names.

Keys: ``vouch:dlg:<id>`` (JSON, kept a day after the delegation ends, so its person can
still see it as expired), the sorted sets ``vouch:user:<email>:dlgs`` and ``vouch:dlgs``
(score = expiry) for listing and counting the unexpired ones, and
``vouch:user:<email>:dlgs-ended`` (score = expiry) for a person's recently expired ones.
Records are for people and admins to list and revoke; the token itself is never stored.
A record is added only while its person holds fewer than the org policy's maximum of active
delegations, checked and taken in one atomic step (`broker.capped_set`).
"""

from __future__ import annotations

import builtins
from typing import cast

import msgspec
import redis.asyncio as aioredis

from broker.capped_set import CappedSets
from broker.store import PREFIX, guard, read_many, text

KEEP_AFTER_EXPIRY_S = 86_400
"""How long an expired delegation stays listable (as expired) by its person."""
_ENDED_TTL_S = 7 * 86_400 + KEEP_AFTER_EXPIRY_S  # the longest grant, then the day after


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
    revoked_reason: str | None = None
    jkt: str | None = None
    """The thumbprint of the agent key its token is bound to (None: a bearer token)."""
    budget: str | None = None
    """The most it may spend (decimal text, the price table's currency); None: no budget."""


def _record(dlg_id: str) -> str:
    return f"{PREFIX}dlg:{dlg_id}"


def _of_person(email: str) -> str:
    return f"{PREFIX}user:{email}:dlgs"


def _ended_of(email: str) -> str:
    return f"{PREFIX}user:{email}:dlgs-ended"


_EVERYONE = f"{PREFIX}dlgs"


class DelegationStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._active = CappedSets(redis)

    async def add(self, record: Delegation, *, max_active: int) -> int | None:
        """Store the record if its person holds fewer than `max_active` active delegations.

        Returns None when stored, else how many the person holds (nothing was stored).
        """
        placed = await self._active.add(
            _of_person(record.email),
            record.id,
            expires_at=record.expires_at,
            now=record.created_at,
            cap=max_active,
        )
        if not placed.added:
            return placed.held
        ttl = record.expires_at - record.created_at + KEEP_AFTER_EXPIRY_S
        async with guard("recording the delegation"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(_record(record.id), msgspec.json.encode(record), ex=ttl)
            pipe.zadd(_EVERYONE, {record.id: record.expires_at})
            # Prune expired ids as new ones arrive so the global index stays bounded.
            pipe.zremrangebyscore(_EVERYONE, 0, record.created_at)
            ended = _ended_of(record.email)
            pipe.zadd(ended, {record.id: record.expires_at})
            pipe.zremrangebyscore(ended, 0, record.created_at - KEEP_AFTER_EXPIRY_S)
            pipe.expire(ended, _ENDED_TTL_S)
            await pipe.execute()
        return None

    async def discard(self, record: Delegation) -> None:
        """Forget a record whose token was never handed out (its minting failed)."""
        async with guard("discarding a delegation"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(_record(record.id))
            pipe.zrem(_of_person(record.email), record.id)
            pipe.zrem(_EVERYONE, record.id)
            pipe.zrem(_ended_of(record.email), record.id)
            await pipe.execute()

    async def replace(self, record: Delegation, *, now: int) -> None:
        """Store a changed record (e.g. revoked) for the rest of its life."""
        ttl = max(1, record.expires_at - now + KEEP_AFTER_EXPIRY_S)
        async with guard("recording the revocation"):
            await self.redis.set(_record(record.id), msgspec.json.encode(record), ex=ttl)

    async def get(self, dlg_id: str) -> Delegation | None:
        async with guard("reading a delegation"):
            body = await self.redis.get(_record(dlg_id))
        return msgspec.json.decode(body, type=Delegation) if body else None

    async def count_active(self, email: str, *, now: int) -> int:
        key = _of_person(email)
        async with guard("counting delegations"):
            await self.redis.zremrangebyscore(key, 0, now)
            return int(await self.redis.zcard(key))

    async def list(
        self, email: str | None, *, now: int, limit: int = 200
    ) -> builtins.list[Delegation]:
        """Unexpired delegations of one person, or everybody's when email is None."""
        key = _of_person(email) if email else _EVERYONE
        async with guard("listing delegations"):
            await self.redis.zremrangebyscore(key, 0, now)
            ids = cast(builtins.list[bytes], await self.redis.zrange(key, 0, limit - 1))
            bodies = await read_many(self.redis, [_record(text(i)) for i in ids])
        return [msgspec.json.decode(b, type=Delegation) for b in bodies if b]

    async def ended(self, email: str, *, now: int, limit: int = 50) -> builtins.list[Delegation]:
        """A person's delegations that expired within the last day, latest first."""
        key = _ended_of(email)
        async with guard("listing expired delegations"):
            ids = cast(
                builtins.list[bytes],
                await self.redis.zrange(
                    key,
                    now,
                    now - KEEP_AFTER_EXPIRY_S,
                    byscore=True,
                    desc=True,
                    offset=0,
                    num=limit,
                ),
            )
            bodies = await read_many(self.redis, [_record(text(i)) for i in ids])
        return [msgspec.json.decode(b, type=Delegation) for b in bodies if b]
