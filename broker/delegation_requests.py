"""Agent-initiated delegation requests: the agent asks, the person approves with a tap.

``vouch:dreq:<id>`` holds the request (JSON); ``vouch:dreq:code:<user code>`` points to it;
``vouch:user:<email>:dreqs`` (score = expiry) caps pending requests per person. The poll
secret is stored only as a hash; the approved token is handed to the agent once, then deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis

from broker.errors import Conflict, NotFound, PermissionDenied, TokenInvalid
from broker.session import Person
from broker.store import PREFIX, guard, text

# No vowels or look-alikes (0/O, 1/I/L): codes are read aloud and typed by people.
CODE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ23456789"
POLL_INTERVAL_S = 2


class DelegationRequest(msgspec.Struct, kw_only=True):
    id: str
    email: str
    agent: str
    models: list[str]
    ttl_s: int
    message: str
    created_at: int
    expires_at: int
    secret_hash: str
    code: str
    status: str = "pending"  # pending | approved | denied | delivered
    token: str | None = None
    delegation_id: str | None = None


@dataclass(frozen=True)
class Created:
    id: str
    user_code: str
    poll_secret: str
    expires_at: int
    interval: int


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_user_code() -> str:
    """8 characters from a 27-letter alphabet (38 bits), shown as XXXX-XXXX."""
    text = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{text[:4]}-{text[4:]}"


def normalize_code(code: str) -> str:
    text = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{text[:4]}-{text[4:]}"


@dataclass
class DelegationRequests:
    redis: aioredis.Redis
    ttl_s: int = 300
    max_pending: int = 5

    async def create(
        self, *, email: str, agent: str, models: list[str], ttl_s: int, message: str
    ) -> Created:
        """Raises: Conflict when the person already has the maximum of pending requests."""
        now = int(time.time())
        await self._check_pending(email, now)
        secret = secrets.token_urlsafe(32)
        code = new_user_code()
        req = DelegationRequest(
            id="dreq_" + secrets.token_urlsafe(12),
            email=email,
            agent=agent,
            models=models,
            ttl_s=ttl_s,
            message=message,
            created_at=now,
            expires_at=now + self.ttl_s,
            secret_hash=_hash(secret),
            code=code,
        )
        async with guard("recording a delegation request"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self._key(req.id), msgspec.json.encode(req), ex=self.ttl_s + 600)
            pipe.set(f"{PREFIX}dreq:code:{code}", req.id, ex=self.ttl_s)
            pipe.zadd(f"{PREFIX}user:{email}:dreqs", {req.id: req.expires_at})
            await pipe.execute()
        return Created(req.id, code, secret, req.expires_at, POLL_INTERVAL_S)

    async def _check_pending(self, email: str, now: int) -> None:
        key = f"{PREFIX}user:{email}:dreqs"
        async with guard("counting delegation requests"):
            await self.redis.zremrangebyscore(key, 0, now)
            pending = await self.redis.zcard(key)
        if pending >= self.max_pending:
            raise Conflict(f"{email} already has {pending} pending requests; try again later")

    def _key(self, req_id: str) -> str:
        return f"{PREFIX}dreq:{req_id}"

    async def _load(self, req_id: str) -> DelegationRequest | None:
        async with guard("reading a delegation request"):
            body = await self.redis.get(self._key(req_id))
        return msgspec.json.decode(body, type=DelegationRequest) if body else None

    async def _save(self, req: DelegationRequest) -> None:
        async with guard("updating a delegation request"):
            await self.redis.set(self._key(req.id), msgspec.json.encode(req), keepttl=True)

    async def for_approval(self, person: Person, code: str) -> DelegationRequest:
        """The pending request behind a user code, if it is this person's to decide.

        Raises:
            NotFound: unknown or expired code. PermissionDenied: another person's request.
        """
        async with guard("reading a delegation request"):
            req_id = await self.redis.get(f"{PREFIX}dreq:code:{normalize_code(code)}")
        req = await self._load(text(req_id)) if req_id else None
        if req is None or req.status != "pending" or req.expires_at <= time.time():
            raise NotFound("no pending delegation request with that code")
        if req.email != person.email:
            raise PermissionDenied("this delegation request was made to another person")
        return req

    async def approve(self, req_id: str, token: str, delegation_id: str) -> None:
        req = await self._load(req_id)
        if req is None or req.status != "pending":
            raise NotFound("the delegation request is gone or already decided")
        req.status, req.token, req.delegation_id = "approved", token, delegation_id
        await self._save(req)
        await self._settle(req)

    async def deny(self, person: Person, code: str) -> DelegationRequest:
        req = await self.for_approval(person, code)
        req.status = "denied"
        await self._save(req)
        await self._settle(req)
        return req

    async def _settle(self, req: DelegationRequest) -> None:
        """A decided request no longer counts as pending, and its code stops working."""
        async with guard("updating a delegation request"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(f"{PREFIX}user:{req.email}:dreqs", req.id)
            pipe.delete(f"{PREFIX}dreq:code:{req.code}")
            await pipe.execute()

    async def poll(self, req_id: str, secret: str) -> DelegationRequest:
        """The request's state for its agent; an approved token is delivered exactly once.

        Raises:
            NotFound: unknown request. TokenInvalid: wrong poll secret.
        """
        req = await self._load(req_id)
        if req is None:
            raise NotFound("no such delegation request (it may have expired)")
        if not hmac.compare_digest(req.secret_hash, _hash(secret)):
            raise TokenInvalid("wrong poll secret for this delegation request")
        delivered = msgspec.structs.replace(req)
        if req.status == "approved":
            req.status, req.token = "delivered", None
            await self._save(req)
        elif req.status == "pending" and req.expires_at <= time.time():
            delivered.status = "expired"
        return delivered
