"""Agent-initiated delegation requests: the agent asks, the person approves with a tap.

``vouch:dreq:<id>`` is a hash: ``request`` (the JSON `DelegationRequest`), ``status``,
``expires_at`` and, once approved, ``sealed`` (the token sealed to the poll secret, see
`broker.poll_secret`) and ``delegation_id``. ``vouch:dreq:code:<user code>`` points to it.
``vouch:user:<email>:dreqs`` and ``vouch:addr:<source>:dreqs`` (score = expiry) bound the
pending requests per person and per source address.

Every change of status is one Lua script on the request's hash, so a decision or a delivery
happens at most once however many replicas race for it:

    pending -> claimed (an approval is minting) -> approved -> delivered (token handed over)
    claimed -> pending (the minting failed)     pending -> denied
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import cast

import msgspec
import redis.asyncio as aioredis

from broker import poll_secret
from broker.capped_set import CappedSets
from broker.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    StoreUnavailable,
    TokenInvalid,
)
from broker.session import Person
from broker.store import PREFIX, guard, text

log = logging.getLogger("vouch.requests")

# No vowels or look-alikes (0/O, 1/I/L): codes are read aloud and typed by people.
CODE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ23456789"
POLL_INTERVAL_S = 2
KEEP_AFTER_EXPIRY_S = 600  # an agent can still learn the outcome this long after expiry
# The only shape of a request id ("dreq_" + 12 random bytes, base64url): anything else,
# such as a path that would name another key, is unknown without touching Redis.
_REQUEST_ID = re.compile(r"dreq_[A-Za-z0-9_-]{16}")
NOT_FOUND = "no such delegation request (it may have expired)"

# KEYS[1]: a request. ARGV: the status it must have, the new one, now ('' = no expiry
# check), then fields to set (name, value, ...). 1 when changed, 0 when not.
_TRANSITION = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'expires_at')) <= tonumber(ARGV[3])
then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 4))
return 1
"""
# KEYS[1]: a request. The sealed token if this call is the one that delivers it, else ''
# (the token leaves Redis in the same step).
_DELIVER = """
if redis.call('HGET', KEYS[1], 'status') ~= 'approved' then return '' end
local sealed = redis.call('HGET', KEYS[1], 'sealed')
redis.call('HSET', KEYS[1], 'status', 'delivered')
redis.call('HDEL', KEYS[1], 'sealed')
return sealed
"""


class DelegationRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent asked for; never changes once made (the status lives beside it)."""

    id: str
    email: str
    agent: str
    models: list[str]
    ttl_s: int
    message: str
    address: str
    """The client address that made the request, as the broker saw it."""
    created_at: int
    expires_at: int
    secret_hash: str
    seal_key: str
    """The X25519 public key derived from the poll secret: the token is sealed to it."""
    code: str
    jkt: str | None = None
    """The thumbprint of the public key the agent sent: its token will be bound to it."""
    budget: str | None = None
    """The budget the agent asked to be capped at ("5.00"); None: none."""


@dataclass(frozen=True)
class _Stored:
    req: DelegationRequest
    status: str
    delegation_id: str | None


_FIELDS = ["request", "status", "delegation_id"]


def _stored(body: bytes | None, status: bytes | None, dlg_id: bytes | None) -> _Stored | None:
    if body is None or status is None:
        return None
    req = msgspec.json.decode(body, type=DelegationRequest)
    return _Stored(req, text(status), text(dlg_id) if dlg_id else None)


@dataclass(frozen=True)
class Created:
    id: str
    user_code: str
    poll_secret: str
    expires_at: int
    interval: int


@dataclass(frozen=True)
class Polled:
    """What the agent learns: the status and, exactly once, the token."""

    status: str  # pending | approved | delivered | denied | expired
    token: str | None = None
    delegation_id: str | None = None


def new_user_code() -> str:
    """8 characters from a 27-letter alphabet (38 bits), shown as XXXX-XXXX."""
    text = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{text[:4]}-{text[4:]}"


def normalize_code(code: str) -> str:
    text = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{text[:4]}-{text[4:]}"


def is_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


def source_of(address: str) -> str:
    """The unit a source bound counts: an IPv4 address, or an IPv6 /64 (one subscriber)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _key(req_id: str) -> str:
    return f"{PREFIX}dreq:{req_id}"


def _code_key(code: str) -> str:
    return f"{PREFIX}dreq:code:{code}"


def _of_person(email: str) -> str:
    return f"{PREFIX}user:{email}:dreqs"


def _of_source(source: str) -> str:
    return f"{PREFIX}addr:{source}:dreqs"


@dataclass
class DelegationRequests:
    redis: aioredis.Redis
    ttl_s: int = 300
    max_per_person: int = 5
    max_per_address: int = 3

    def __post_init__(self) -> None:
        self._pending = CappedSets(self.redis)
        self._transition = self.redis.register_script(_TRANSITION)
        self._deliver = self.redis.register_script(_DELIVER)

    async def create(
        self,
        *,
        email: str,
        agent: str,
        models: list[str],
        ttl_s: int,
        message: str,
        address: str,
        jkt: str | None = None,
        budget: str | None = None,
    ) -> Created:
        """Record a request once both its source and its person have a pending place.

        Raises:
            RateLimited: the source address already has its maximum of pending requests.
            Conflict: the person already has the maximum of pending requests.
        """
        now = int(time.time())
        secret = poll_secret.new_secret()
        req = DelegationRequest(
            id="dreq_" + secrets.token_urlsafe(12),
            email=email,
            agent=agent,
            models=models,
            ttl_s=ttl_s,
            message=message,
            address=address,
            created_at=now,
            expires_at=now + self.ttl_s,
            secret_hash=poll_secret.verifier(secret),
            seal_key=poll_secret.public_key(secret),
            code=new_user_code(),
            jkt=jkt,
            budget=budget,
        )
        await self._reserve(req, now)
        async with guard("recording a delegation request"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(
                _key(req.id),
                mapping={
                    "request": msgspec.json.encode(req),
                    "status": "pending",
                    "expires_at": req.expires_at,
                },
            )
            pipe.expire(_key(req.id), self.ttl_s + KEEP_AFTER_EXPIRY_S)
            pipe.set(_code_key(req.code), req.id, ex=self.ttl_s)
            await pipe.execute()
        return Created(req.id, req.code, secret, req.expires_at, POLL_INTERVAL_S)

    async def _reserve(self, req: DelegationRequest, now: int) -> None:
        """A pending place for the request at its source, then at its person.

        The source is counted first, so an address at its bound learns nothing about the
        person it names. Both answers are the same for registered and unknown people.
        """
        source = _of_source(source_of(req.address))
        placed = await self._pending.add(
            source, req.id, expires_at=req.expires_at, now=now, cap=self.max_per_address
        )
        if not placed.added:
            raise RateLimited(
                f"{placed.held} pending requests from your address already wait for an answer;"
                " try again when one is decided or expires",
                retry_after=max(1, placed.next_free_at - now),
            )
        held = await self._pending.add(
            _of_person(req.email),
            req.id,
            expires_at=req.expires_at,
            now=now,
            cap=self.max_per_person,
        )
        if not held.added:
            await self._pending.remove(source, req.id)
            raise Conflict(f"{req.email} already has {held.held} pending requests; try again later")

    async def _load(self, req_id: str) -> _Stored | None:
        async with guard("reading a delegation request"):
            row = cast(list[bytes | None], await self.redis.hmget(_key(req_id), _FIELDS))
        return _stored(*row)

    async def _move(
        self, req_id: str, was: str, to: str, *, now: float | None = None, **fields: str
    ) -> bool:
        """Change the status from `was` to `to` atomically (only before expiry, given `now`)."""
        extra = [item for pair in fields.items() for item in pair]
        deadline = "" if now is None else str(int(now))
        async with guard("updating a delegation request"):
            moved = await self._transition(keys=[_key(req_id)], args=[was, to, deadline, *extra])
        return bool(int(moved))

    async def for_approval(self, person: Person, code: str) -> DelegationRequest:
        """The pending request behind a user code, if it is this person's to decide.

        Raises:
            NotFound: unknown or expired code. PermissionDenied: another person's request.
        """
        async with guard("reading a delegation request"):
            req_id = await self.redis.get(_code_key(normalize_code(code)))
        loaded = await self._load(text(req_id)) if req_id else None
        if loaded is None or loaded.status != "pending" or loaded.req.expires_at <= time.time():
            raise NotFound("no pending delegation request with that code")
        req = loaded.req
        if req.email != person.email:
            raise PermissionDenied("this delegation request was made to another person")
        return req

    async def pending_of(
        self, email: str, *, now: int, limit: int = 100
    ) -> list[DelegationRequest]:
        """This person's requests still waiting for a decision, oldest first."""
        key = _of_person(email)
        async with guard("listing delegation requests"):
            await self.redis.zremrangebyscore(key, 0, now)
            ids = cast(list[bytes], await self.redis.zrange(key, 0, limit - 1))
            pipe = self.redis.pipeline(transaction=False)
            for req_id in ids:
                pipe.hmget(_key(text(req_id)), _FIELDS)
            rows = cast(list[list[bytes | None]], await pipe.execute())
        found = [stored for row in rows if (stored := _stored(*row)) is not None]
        return [
            s.req
            for s in found
            if s.status == "pending" and s.req.email == email and s.req.expires_at > now
        ]

    async def claim(self, req_id: str) -> DelegationRequest:
        """Take the decision on a pending request: nobody else can approve or deny it now.

        Raises:
            NotFound: it is gone, expired, or already decided (or being decided).
        """
        if not await self._move(req_id, "pending", "claimed", now=time.time()):
            raise NotFound("the delegation request is gone or already decided")
        loaded = await self._load(req_id)
        if loaded is None:
            raise NotFound("the delegation request is gone or already decided")
        return loaded.req

    async def release(self, req_id: str) -> None:
        """Give a claimed request back (the approval failed before a token existed)."""
        await self._move(req_id, "claimed", "pending")

    async def approve(self, req: DelegationRequest, token: str, delegation_id: str) -> None:
        """Hand a claimed request its token, sealed so that only the poll secret opens it.

        Raises:
            NotFound: the request was not claimed (its claim is gone).
        """
        sealed = poll_secret.seal(token, to=req.seal_key, req_id=req.id)
        approved = await self._move(
            req.id, "claimed", "approved", sealed=sealed, delegation_id=delegation_id
        )
        if not approved:
            raise NotFound("the delegation request is gone or already decided")
        try:
            await self._settle(req)
        except StoreUnavailable:
            # The approval stands (the agent can collect it); the request keeps its pending
            # places until it expires and its code, pointing at a decided request, is refused.
            log.warning("request %s approved, but its pending places were not freed", req.id)

    async def deny(self, person: Person, code: str) -> DelegationRequest:
        req = await self.for_approval(person, code)
        if not await self._move(req.id, "pending", "denied", now=time.time()):
            raise NotFound("no pending delegation request with that code")
        await self._settle(req)
        return req

    async def _settle(self, req: DelegationRequest) -> None:
        """A decided request no longer counts as pending, and its code stops working."""
        async with guard("updating a delegation request"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(_of_person(req.email), req.id)
            pipe.zrem(_of_source(source_of(req.address)), req.id)
            pipe.delete(_code_key(req.code))
            await pipe.execute()

    async def poll(self, req_id: str, secret: str) -> Polled:
        """The request's state for its agent; an approved token is delivered exactly once.

        Raises:
            NotFound: unknown request, or not a request id at all. TokenInvalid: wrong poll
            secret.
        """
        loaded = await self._load(req_id) if is_request_id(req_id) else None
        if loaded is None:
            raise NotFound(NOT_FOUND)
        req, status, dlg_id = loaded.req, loaded.status, loaded.delegation_id
        if not poll_secret.matches(req.secret_hash, secret):
            raise TokenInvalid("wrong poll secret for this delegation request")
        if status == "approved":
            async with guard("delivering a delegation request"):
                sealed = text(await self._deliver(keys=[_key(req.id)]))
            if sealed:  # this poll won the delivery; any other sees it delivered
                token = poll_secret.open_sealed(sealed, secret=secret, req_id=req.id)
                return Polled("approved", token, dlg_id)
            status = "delivered"
        if status == "claimed":  # claimed before it expired: an approval is being minted
            return Polled("pending")
        if status == "pending":
            return Polled("expired" if req.expires_at <= time.time() else "pending")
        return Polled(status, delegation_id=dlg_id if status == "delivered" else None)
