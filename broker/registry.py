"""Registered people and their FIDO2 credentials, and the signature-counter guard.

Keys: ``vouch:user:<email>`` (hash: created, and `disabled` while the person is revoked),
``vouch:user:<email>:creds`` (set of credential hashes), ``vouch:cred:<cid>`` (hash: email,
credential data, counter, state, when and how it was added), ``vouch:people`` (sorted set of
every person's email, all scored 0 so a range by email pages through them in order; written
with the person's first key or revocation) and ``vouch:people:indexed`` (set once the people
registered before that index existed were added to it). `cid` is a hash of the FIDO2
credential id so the raw id never appears in tokens or logs.

A revoked person stays revoked (docs/design.md invariant 11): adding a key never clears
`disabled`; only `reinstate` does.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from fido2.webauthn import AttestedCredentialData

from broker.assertion import SOFTWARE_AAGUID
from broker.errors import Conflict, PermissionDenied
from broker.store import PREFIX, guard, text

PEOPLE = f"{PREFIX}people"
PEOPLE_INDEXED = f"{PREFIX}people:indexed"
_USER = f"{PREFIX}user:"

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
    added_at: int = 0
    added_ms: int = 0
    """When it was added, in milliseconds: what orders a person's keys."""
    last_used: int | None = None
    via: str = ""
    """How the key was added: "invite" or "key" (approved by another key of the person)."""
    invite: str | None = None
    approved_by: str | None = None

    @property
    def aaguid(self) -> str:
        """The authenticator model the key claimed at enrollment (self-reported)."""
        return str(self.data.aaguid)

    @property
    def software(self) -> bool:
        """Whether it claimed to be the `vouch` software authenticator."""
        return self.aaguid == SOFTWARE_AAGUID


@dataclass(frozen=True)
class PersonRecord:
    """A registered person as admins see them: their keys and whether they are revoked."""

    email: str
    registered_at: int
    disabled_since: int | None
    """When they were revoked (Unix time); None while they may sign in."""
    credentials: list[Credential]


@dataclass(frozen=True)
class Authorized:
    """What let a key be added: an invite (by id) or a tap by another key (by cid)."""

    via: str
    invite: str | None = None
    approved_by: str | None = None


class Registry:
    """People and credentials in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._counter = redis.register_script(_COUNTER_SCRIPT)

    async def add(
        self, email: str, data: AttestedCredentialData, counter: int, how: Authorized
    ) -> str:
        """Register a credential for `email`; returns its cid. Never re-enables a person.

        Raises:
            Conflict: the credential is already registered.
            PermissionDenied: the person is revoked (checked after the write, so a
                revocation racing this enrollment revokes the new key either way).
        """
        cid = credential_hash(data.credential_id)
        clock = time.time()
        now = str(int(clock))
        fields = {
            "email": email,
            "data": bytes(data),
            "counter": counter,
            "state": "active",
            "created": now,
            "created_ms": int(clock * 1000),  # orders keys added within one second
            "via": how.via,
            **({"invite": how.invite} if how.invite else {}),
            **({"approved_by": how.approved_by} if how.approved_by else {}),
        }
        user = f"{PREFIX}user:{email}"
        async with guard("registering a security key"):
            if not await self.redis.hsetnx(f"{PREFIX}cred:{cid}", "email", email):
                raise Conflict("this security key is already registered")
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(f"{PREFIX}cred:{cid}", mapping=fields)  # type: ignore[arg-type]
            pipe.sadd(f"{user}:creds", cid)
            pipe.hsetnx(user, "created", now)
            pipe.zadd(PEOPLE, {email: 0})
            await pipe.execute()
            # `disable_user` marks the person before it reads their keys: either it sees
            # this key, or this read sees the mark. Both end with the key revoked.
            if await self.redis.hexists(user, "disabled"):
                await self.redis.hset(f"{PREFIX}cred:{cid}", "state", "revoked")
                raise PermissionDenied(_REVOKED)
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

    async def disabled_since(self, email: str) -> int | None:
        """When the person was revoked (Unix time), or None while they may sign in."""
        async with guard("reading a person"):
            value = await self.redis.hget(f"{PREFIX}user:{email}", "disabled")
        return int(value) if value is not None else None

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
        async with guard("disabling a person"):
            # The mark first, then the keys: see `add`. Listed even without a key, so an
            # email revoked before it enrolled can be found and reinstated.
            await self.redis.hset(f"{PREFIX}user:{email}", "disabled", str(int(time.time())))
            await self.redis.zadd(PEOPLE, {email: 0})
        creds = await self.credentials_of(email)
        async with guard("disabling a person"):
            pipe = self.redis.pipeline(transaction=False)
            for cred in creds:
                pipe.hset(f"{PREFIX}cred:{cred.cid}", "state", "revoked")
            await pipe.execute()

    async def check_enabled(self, email: str) -> None:
        """Raises: PermissionDenied when the person is revoked."""
        if await self.is_disabled(email):
            raise PermissionDenied(_REVOKED)

    async def people(
        self, *, after: str = "", count: int = 100
    ) -> tuple[list[PersonRecord], str | None]:
        """At most `count` people by email after `after`, and the `after` of the next page
        (None: no more).

        Raises: StoreUnavailable.
        """
        await self._index_earlier_people()
        async with guard("listing people"):
            low = f"({after}" if after else "-"
            found = cast(
                list[bytes], await self.redis.zrangebylex(PEOPLE, low, "+", start=0, num=count + 1)
            )
        emails = [text(e) for e in found]
        records = await self._records(emails[:count])
        return records, emails[count - 1] if len(emails) > count else None

    async def person(self, email: str) -> PersonRecord | None:
        """One person with their keys; None if they never enrolled nor were revoked.

        Raises: StoreUnavailable.
        """
        records = await self._records([email])
        return records[0] if records else None

    async def _records(self, emails: list[str]) -> list[PersonRecord]:
        async with guard("reading people"):
            pipe = self.redis.pipeline(transaction=False)
            for email in emails:
                pipe.hgetall(f"{_USER}{email}")
                pipe.smembers(f"{_USER}{email}:creds")
            rows = await pipe.execute()
            users = rows[0::2]
            cids = [sorted(text(c) for c in members) for members in rows[1::2]]
            pipe = self.redis.pipeline(transaction=False)
            for cid in (c for group in cids for c in group):
                pipe.hgetall(f"{PREFIX}cred:{cid}")
            creds = iter(await pipe.execute())
        records = []
        for email, user, group in zip(emails, users, cids, strict=True):
            rows = [next(creds) for _ in group]
            keys = [_credential(cid, row) for cid, row in zip(group, rows, strict=True) if row]
            if not user and not keys:
                continue
            disabled = user.get(b"disabled")
            records.append(
                PersonRecord(
                    email=email,
                    registered_at=int(user.get(b"created", b"0")),
                    disabled_since=int(disabled) if disabled is not None else None,
                    credentials=sorted(keys, key=lambda c: (c.added_ms, c.cid)),
                )
            )
        return records

    async def _index_earlier_people(self) -> None:
        """Add the people registered before `vouch:people` existed to it, once (a scan of
        `vouch:user:*`; idempotent, so two replicas doing it at once agree)."""
        async with guard("indexing people"):
            if await self.redis.exists(PEOPLE_INDEXED):
                return
            emails = set()
            async for key in self.redis.scan_iter(match=f"{_USER}*", count=1000):
                # `<email>` and `<email>:creds`, not `<email>:dlgs` (requests to anyone).
                email = text(key)[len(_USER) :].removesuffix(":creds")
                if ":" not in email:
                    emails.add(email)
            if emails:
                await self.redis.zadd(PEOPLE, dict.fromkeys(emails, 0))
            await self.redis.set(PEOPLE_INDEXED, str(int(time.time())))

    async def reinstate(self, email: str) -> bool:
        """Let a revoked person back in (their revoked keys stay revoked); False if they
        were not revoked."""
        async with guard("reinstating a person"):
            return bool(await self.redis.hdel(f"{PREFIX}user:{email}", "disabled"))


_REVOKED = (
    "this person's access has been revoked; an admin must reinstate them"
    " (vouch admin reinstate EMAIL)"
)


def _credential(cid: str, row: Mapping[Any, Any]) -> Credential:
    data, _ = AttestedCredentialData.unpack_from(row[b"data"])

    def optional(name: bytes) -> str | None:
        value = row.get(name)
        return None if value is None else text(value)

    last_used = optional(b"last_used")
    return Credential(
        cid=cid,
        email=row[b"email"].decode(),
        data=data,
        counter=int(row.get(b"counter", b"0")),
        state=row.get(b"state", b"active").decode(),
        added_at=int(row.get(b"created", b"0")),
        added_ms=int(row.get(b"created_ms", b"0")) or int(row.get(b"created", b"0")) * 1000,
        last_used=int(last_used) if last_used else None,
        via=optional(b"via") or "",
        invite=optional(b"invite"),
        approved_by=optional(b"approved_by"),
    )
