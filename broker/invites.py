"""One-time invite codes: stored only under a hash of the code, single use, short-lived.

``vouch:invite:<id>`` (hash: email, created_by, created_at, expires_at, and while an
enrollment holds it, ceremony + bound_until) expires with the invite; ``vouch:invites`` (a
sorted set of ids by expiry) lets admins list and cancel them. The id is a hash of the
code, so the code itself is never stored and the id (shown in listings and the audit
trail) cannot be turned back into it.

An enrollment binds the invite to its challenge at begin (`bind`): while that challenge
lives, a second enrollment with the same code is refused, so whoever reads the code
elsewhere (another user's `/proc/PID/cmdline`) cannot race the person it was meant for.
Completion consumes the invite only for the challenge it is bound to (`consume`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from broker.errors import InviteInvalid
from broker.store import PREFIX, connect, guard, text

INDEX = f"{PREFIX}invites"
HOST = "vouch-broker invite"
"""`created_by` of the invites the operator creates on the server host."""
_ID_DOMAIN = b"vouch-invite-v1\x00"
_ID = re.compile(r"inv_[A-Za-z0-9_-]{20}")
_UNUSABLE = "invite code is unknown, used, expired or for another email"

# Create only if no invite has this id (NX), with its lifetime, in one step.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
# 1 bound to this ceremony; 0 unknown or for another email; -1 held by another live ceremony.
_BIND = """
local owner = redis.call('HGET', KEYS[1], 'email')
if not owner or owner ~= ARGV[1] then return 0 end
local holder = redis.call('HGET', KEYS[1], 'ceremony')
local until_ = tonumber(redis.call('HGET', KEYS[1], 'bound_until') or '0')
if holder and holder ~= ARGV[2] and until_ > tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], 'ceremony', ARGV[2], 'bound_until', ARGV[4])
return 1
"""
# Delete the invite only for the email and the ceremony it is bound to.
_CONSUME = """
if redis.call('HGET', KEYS[1], 'email') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'ceremony') ~= ARGV[2] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class Invite(msgspec.Struct, frozen=True):
    """An invite as admins see it: never the code."""

    id: str
    email: str
    created_by: str
    created_at: int
    expires_at: int
    in_use: bool = False
    """An enrollment that began with the code holds it until its challenge expires."""


def new_code() -> str:
    """A human-typeable code with 100 bits of entropy (base32, grouped by 4)."""
    raw = secrets.token_bytes(13)
    text = base64.b32encode(raw).decode("ascii").rstrip("=")[:20]
    return "-".join(text[i : i + 4] for i in range(0, 20, 4))


def invite_id(code: str) -> str:
    """The invite's public id: 120 bits of a domain-separated SHA-256 of the code."""
    digest = hashlib.sha256(_ID_DOMAIN + code.strip().encode("utf-8", "replace")).digest()
    return "inv_" + base64.urlsafe_b64encode(digest[:15]).decode()


def _key(inv_id: str) -> str:
    return f"{PREFIX}invite:{inv_id}"


class Invites:
    """Issue, bind, consume, list and cancel invite codes."""

    def __init__(self, redis: aioredis.Redis, *, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._create = redis.register_script(_CREATE)
        self._bind = redis.register_script(_BIND)
        self._consume = redis.register_script(_CONSUME)

    async def issue(self, email: str, *, by: str) -> tuple[Invite, str]:
        """A new invite for `email` and its code (shown once, never stored)."""
        now = int(time.time())
        code = new_code()
        invite = Invite(invite_id(code), email, by, now, now + self.ttl_s)
        fields: list[str | int] = ["email", email, "created_by", by, "created_at", now]
        async with guard("creating an invite"):
            created = await self._create(
                keys=[_key(invite.id)],
                args=[self.ttl_s, *fields, "expires_at", invite.expires_at],
            )
            if not int(created):  # 2**-120: a collision means a broken random source
                raise RuntimeError("invite id collision")
            await self.redis.zadd(INDEX, {invite.id: invite.expires_at})
        return invite, code

    async def create(self, email: str) -> str:
        """An invite made on the server host (`vouch-broker invite`); its code."""
        return (await self.issue(email, by=HOST))[1]

    async def peek(self, code: str, email: str) -> Invite:
        """The live invite `code` names for `email`, without using it.

        Raises:
            InviteInvalid: unknown, used, cancelled, expired, or for somebody else.
        """
        invite = await self.get(invite_id(code), now=int(time.time()))
        if invite is None or invite.email != email:
            raise InviteInvalid(_UNUSABLE)
        return invite

    async def bind(self, inv_id: str, email: str, ceremony: str, *, until: int) -> None:
        """Hold the invite for one enrollment ceremony until `until` (its challenge's end).

        Raises:
            InviteInvalid: unusable, or already held by another live enrollment.
        """
        async with guard("reserving an invite"):
            held = int(
                await self._bind(
                    keys=[_key(inv_id)], args=[email, ceremony, int(time.time()), until]
                )
            )
        if held == 0:
            raise InviteInvalid(_UNUSABLE)
        if held < 0:
            raise InviteInvalid(
                "this invite code is already in use by another enrollment; if that was not"
                " you, ask your admin to cancel it and issue a new one"
            )

    async def consume(self, inv_id: str, email: str, ceremony: str) -> None:
        """Use the invite up, for the enrollment it is bound to; a second use fails.

        Raises:
            InviteInvalid: used, cancelled, expired, for somebody else or another ceremony.
        """
        async with guard("using an invite"):
            used = int(await self._consume(keys=[_key(inv_id)], args=[email, ceremony]))
            await self.redis.zrem(INDEX, inv_id)
        if not used:
            raise InviteInvalid(_UNUSABLE)

    async def get(self, inv_id: str, *, now: int) -> Invite | None:
        async with guard("checking an invite"):
            row = await self.redis.hgetall(_key(inv_id))
        return _invite(inv_id, row, now) if row else None

    async def unused(self, *, now: int) -> list[Invite]:
        """Every live invite, soonest to expire first (expired ones pruned)."""
        async with guard("listing invites"):
            await self.redis.zremrangebyscore(INDEX, "-inf", now)
            members = cast(list[bytes], await self.redis.zrange(INDEX, 0, -1))
            ids = [text(i) for i in members]
            pipe = self.redis.pipeline(transaction=False)
            for inv_id in ids:
                pipe.hgetall(_key(inv_id))
            rows = await pipe.execute()
            gone = [inv_id for inv_id, row in zip(ids, rows, strict=True) if not row]
            if gone:
                await self.redis.zrem(INDEX, *gone)
        return [_invite(i, row, now) for i, row in zip(ids, rows, strict=True) if row]

    async def cancel(self, inv_id: str) -> Invite | None:
        """Delete an unused invite; None when there is no such live invite."""
        if not _ID.fullmatch(inv_id):
            return None
        invite = await self.get(inv_id, now=int(time.time()))
        async with guard("cancelling an invite"):
            deleted = await self.redis.delete(_key(inv_id))
            await self.redis.zrem(INDEX, inv_id)
        return invite if invite is not None and deleted else None

    async def cancel_for(self, email: str) -> list[str]:
        """Cancel every unused invite for `email`; their ids."""
        mine = [i.id for i in await self.unused(now=int(time.time())) if i.email == email]
        return [i for i in mine if await self.cancel(i) is not None]


def _invite(inv_id: str, row: Mapping[Any, Any], now: int) -> Invite:
    def field(name: str, default: str = "") -> str:
        value = row.get(name.encode())
        return default if value is None else text(value)

    return Invite(
        id=inv_id,
        email=field("email"),
        created_by=field("created_by", HOST),
        created_at=int(field("created_at", "0")),
        expires_at=int(field("expires_at", "0")),
        in_use=int(field("bound_until", "0")) > now,
    )


def invite_from_host(redis_url: str, email: str, *, ttl_s: int) -> str:
    """What `vouch-broker invite` does on the server host: one code, straight into Redis."""

    async def create() -> str:
        redis = connect(redis_url, timeout_s=2.0)
        try:
            return await Invites(redis, ttl_s=ttl_s).create(email)
        finally:
            await redis.aclose()

    return asyncio.run(create())
