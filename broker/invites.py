"""One-time invite codes: stored only as a hash, single use (GETDEL), short-lived."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets

import redis.asyncio as aioredis

from broker.errors import InviteInvalid
from broker.store import PREFIX, connect, guard, text


def _key(code: str) -> str:
    digest = hashlib.sha256(code.strip().encode("utf-8", "replace")).hexdigest()
    return f"{PREFIX}invite:{digest}"


def new_code() -> str:
    """A human-typeable code with 100 bits of entropy (base32, grouped by 4)."""
    raw = secrets.token_bytes(13)
    text = base64.b32encode(raw).decode("ascii").rstrip("=")[:20]
    return "-".join(text[i : i + 4] for i in range(0, 20, 4))


class Invites:
    """Create, look at and consume invite codes."""

    def __init__(self, redis: aioredis.Redis, *, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def create(self, email: str) -> str:
        code = new_code()
        async with guard("creating an invite"):
            await self.redis.set(_key(code), email, ex=self.ttl_s, nx=True)
        return code

    async def peek(self, code: str, email: str) -> str:
        """Check the code is live and meant for `email` without using it up; its store key.

        Raises:
            InviteInvalid: unknown, used, expired, or for somebody else.
        """
        async with guard("checking an invite"):
            owner = await self.redis.get(_key(code))
        if owner is None or text(owner) != email:
            raise InviteInvalid("invite code is unknown, used, expired or for another email")
        return _key(code)

    async def consume_key(self, key: str, email: str) -> None:
        """Use the code (by its store key) up; a second use fails.

        Raises:
            InviteInvalid: unknown, used, expired, or for somebody else.
        """
        async with guard("using an invite"):
            owner = await self.redis.getdel(key)
        if owner is None or text(owner) != email:
            raise InviteInvalid("invite code is unknown, used, expired or for another email")


def invite_from_host(redis_url: str, email: str, *, ttl_s: int) -> str:
    """What `vouch-broker invite` does on the server host: one code, straight into Redis."""

    async def create() -> str:
        redis = connect(redis_url, timeout_s=2.0)
        try:
            return await Invites(redis, ttl_s=ttl_s).create(email)
        finally:
            await redis.aclose()

    return asyncio.run(create())
