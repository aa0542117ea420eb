"""Registered people and their FIDO2 credentials, and the signature-counter guard.

Keys: ``vouch:user:<email>`` (hash), ``vouch:user:<email>:creds`` (set of credential hashes),
``vouch:cred:<cid>`` (hash: email, credential data, counter, state). `cid` is a hash of the
FIDO2 credential id so the raw id never appears in tokens or logs.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from fido2.webauthn import AttestedCredentialData

from broker.errors import Conflict
from broker.store import PREFIX, guard, text

# Accept the new counter only if it increases (or the authenticator keeps none: both zero);
# otherwise flag the key in the same atomic step.
_COUNTER_SCRIPT = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'counter') or '0')
local new = tonumber(ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return -1 end
if new > stored or (new == 0 and stored == 0) then
  redis.call('HSET', KEYS[1], 'counter', new, 'last_used', ARGV[2])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'flagged', 'flagged_at', ARGV[2])
return 0
"""


def credential_hash(credential_id: bytes) -> str:
    """Short stable handle for a credential id (128 bits of SHA-256, base64url)."""
    digest = hashlib.sha256(credential_id).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def user_handle(email: str) -> bytes:
    """The WebAuthn user.id: opaque, stable, not the email itself."""
    return hashlib.sha256(b"vouch-user:" + email.encode()).digest()[:16]


@dataclass(frozen=True)
class Credential:
    cid: str
    email: str
    data: AttestedCredentialData
    counter: int
    state: str  # active | flagged | revoked


class Registry:
    """People and credentials in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._counter = redis.register_script(_COUNTER_SCRIPT)

    async def add(self, email: str, data: AttestedCredentialData, counter: int) -> str:
        """Register a credential for `email`; returns its cid.

        Raises:
            Conflict: the credential is already registered.
        """
        cid = credential_hash(data.credential_id)
        now = str(int(time.time()))
        fields = {
            "email": email,
            "data": bytes(data),
            "counter": counter,
            "state": "active",
            "created": now,
        }
        async with guard("registering a security key"):
            if not await self.redis.hsetnx(f"{PREFIX}cred:{cid}", "email", email):
                raise Conflict("this security key is already registered")
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(f"{PREFIX}cred:{cid}", mapping=fields)  # type: ignore[arg-type]
            pipe.sadd(f"{PREFIX}user:{email}:creds", cid)
            pipe.hsetnx(f"{PREFIX}user:{email}", "created", now)
            pipe.hdel(f"{PREFIX}user:{email}", "disabled")
            await pipe.execute()
        return cid

    async def credentials_of(self, email: str) -> list[Credential]:
        async with guard("reading security keys"):
            cids = sorted(text(c) for c in await self.redis.smembers(f"{PREFIX}user:{email}:creds"))
            pipe = self.redis.pipeline(transaction=False)
            for cid in cids:
                pipe.hgetall(f"{PREFIX}cred:{cid}")
            rows = await pipe.execute()
        return [_credential(cid, row) for cid, row in zip(cids, rows, strict=True) if row]

    async def get(self, cid: str) -> Credential | None:
        async with guard("reading a security key"):
            row = await self.redis.hgetall(f"{PREFIX}cred:{cid}")
        return _credential(cid, row) if row else None

    async def is_disabled(self, email: str) -> bool:
        async with guard("reading a person"):
            return bool(await self.redis.hexists(f"{PREFIX}user:{email}", "disabled"))

    async def advance_counter(self, cid: str, counter: int) -> bool:
        """Store a strictly larger counter; a regression flags the key and returns False."""
        async with guard("updating the signature counter"):
            result = await self._counter(
                keys=[f"{PREFIX}cred:{cid}"], args=[counter, int(time.time())]
            )
        return int(result) == 1

    async def set_state(self, cid: str, state: str) -> bool:
        async with guard("changing a security key"):
            if not await self.redis.exists(f"{PREFIX}cred:{cid}"):
                return False
            await self.redis.hset(f"{PREFIX}cred:{cid}", "state", state)
        return True

    async def disable_user(self, email: str) -> None:
        """Stop a person signing in again (their keys are revoked too)."""
        creds = await self.credentials_of(email)
        async with guard("disabling a person"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(f"{PREFIX}user:{email}", "disabled", str(int(time.time())))
            for cred in creds:
                pipe.hset(f"{PREFIX}cred:{cred.cid}", "state", "revoked")
            await pipe.execute()


def _credential(cid: str, row: Mapping[Any, Any]) -> Credential:
    data, _ = AttestedCredentialData.unpack_from(row[b"data"])
    return Credential(
        cid=cid,
        email=row[b"email"].decode(),
        data=data,
        counter=int(row.get(b"counter", b"0")),
        state=row.get(b"state", b"active").decode(),
    )
