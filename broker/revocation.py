"""Revocation handles and the one-round-trip check every token passes.

Handles (docs/design.md section 3.5):
- ``vouch:rev:<id>``: a delegation is dead; the key expires with the delegation. (Ids start
  with ``dlg_``; a key of at most 30 characters is the smallest Redis allocation class.)
  Its value is ``1``, or ``budget:<spent>:<budget>`` when its budget was spent: the check
  reads it in the same MGET and answers `budget-exceeded` with both amounts.
- ``vouch:nbf:<kind>:<value>`` for kind agent, user, cred: a "not before" time; any token
  issued to or approved by that handle before it is dead. These keys live as long as the
  longest token could, then vanish: by then every token they kill has expired anyway.
- ``vouch:why:<kind>:<value>``: who recorded that "not before" and why (JSON), beside it for
  as long; only for people reading `GET /v1/delegations`, never for the check.
- ``vouch:out:<jti>``: a human session signed out (`POST /v1/logout`); the key expires with
  the session.
- ``vouch:kid:<kid>``: a signing key revoked as compromised; every token it signed is dead.
  Kept for good: whoever holds the key can sign tokens of any lifetime
  (broker/signing_keys.py writes it).

Beside the handles, the same round trip records a DPoP proof's jti (``vouch:dpop:<jkt>:<jti>``,
SET NX for as long as the proof could pass, broker/dpop.py): a proof replayed to any replica
finds it taken.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from broker.errors import (
    BudgetExceeded,
    DpopProofInvalid,
    RateLimited,
    StoreUnavailable,
    TokenRevoked,
)
from broker.redis_pipe import pipe_for
from broker.replication import Replication
from broker.store import PREFIX, guard

KINDS = ("agent", "user", "cred")
# KEYS: the handles, then a DPoP proof's jti key; ARGV[1]: how long to keep that key. The
# handles' values, then 1 when the jti was new (and is now recorded), else 0.
_CHECK_WITH_JTI = """
local n = #KEYS - 1
local values = {}
if n > 0 then values = redis.call('MGET', unpack(KEYS, 1, n)) end
values[n + 1] = redis.call('SET', KEYS[n + 1], '1', 'NX', 'EX', ARGV[1]) and 1 or 0
return values
"""


def delegation_key(dlg_id: str) -> str:
    return f"{PREFIX}rev:{dlg_id}"


BUDGET_MARK = b"budget:"
"""The start of a delegation handle's value when its budget was spent."""


def budget_mark(spent: str, budget: str) -> bytes:
    """The delegation handle's value for a delegation revoked for its budget."""
    return BUDGET_MARK + f"{spent}:{budget}".encode()


def budget_exceeded(value: bytes) -> BudgetExceeded:
    """The refusal for a delegation handle whose value is a `budget_mark`."""
    spent, _, budget = value[len(BUDGET_MARK) :].decode().partition(":")
    return BudgetExceeded(
        f"delegation revoked: it spent {spent} of its {budget} budget", spent=spent, budget=budget
    )


def not_before_key(kind: str, value: str) -> str:
    return f"{PREFIX}nbf:{kind}:{value}"


def reason_key(kind: str, value: str) -> str:
    return f"{PREFIX}why:{kind}:{value}"


class Reason(msgspec.Struct, frozen=True):
    """Who recorded a "not before" handle, and why."""

    by: str
    reason: str = ""


def session_key(jti: str) -> str:
    return f"{PREFIX}out:{jti}"


def signing_key_key(kid: str) -> str:
    return f"{PREFIX}kid:{kid}"


def signing_key_revoked() -> TokenRevoked:
    return TokenRevoked("token revoked: its signing key was revoked", handle="signing-key")


class Revocations:
    """Write revocations; check a token's handles in one MGET."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_token_lifetime_s: int,
        replicas: int = 0,
        wait_ms: int = 500,
        replication: Replication | None = None,
    ) -> None:
        self.redis = redis
        self.max_token_lifetime_s = max_token_lifetime_s
        # A revocation is acknowledged only once no failover can lose it: on the primary
        # and every replica (broker.replication), at least `replicas` of them.
        self.replication = replication or Replication(redis, replicas=replicas, wait_ms=wait_ms)
        self._cluster = isinstance(redis, RedisCluster)
        self._check_with_jti = redis.register_script(_CHECK_WITH_JTI)
        # The checks' own pipelined connection where Redis is one plain server (a fifth of
        # redis-py's CPU per check, broker/redis_pipe.py); writes stay on redis-py.
        self._pipe = pipe_for(redis)

    async def close(self) -> None:
        """Close the checks' own connection (the caller closes the redis-py client)."""
        if self._pipe is not None:
            await self._pipe.close()

    async def revoke_delegation(
        self, dlg_id: str, *, expires_at: int, now: float, mark: bytes = b"1"
    ) -> None:
        """Write the handle (`mark`: its value, e.g. a `budget_mark`).

        Raises: StoreUnavailable (nothing written), RevocationUnconfirmed (retry it).
        """
        ttl = max(1, int(expires_at - now) + 60)
        await self.replication.write(delegation_key(dlg_id), mark, ttl_s=ttl)

    async def revoke_session(self, jti: str, *, expires_at: int, now: float) -> None:
        """Kill one human session (logout).

        Raises: StoreUnavailable (nothing written), RevocationUnconfirmed (retry it).
        """
        ttl = max(1, int(expires_at - now) + 60)
        await self.replication.write(session_key(jti), b"1", ttl_s=ttl, what="signing out")

    async def revoke_not_before(
        self, kind: str, value: str, *, now: float, why: Reason | None = None
    ) -> None:
        """Kill every token issued to or approved by `value` before `now`; `why` is kept
        beside it for people listing their delegations.

        Raises: StoreUnavailable, RevocationUnconfirmed (retry it).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown revocation kind {kind!r}")
        ttl = self.max_token_lifetime_s + 300
        if why is not None:  # first: a reason without its handle changes nothing
            async with guard("recording a revocation"):
                await self.redis.set(reason_key(kind, value), msgspec.json.encode(why), ex=ttl)
        await self.replication.write(not_before_key(kind, value), repr(now), ttl_s=ttl)

    async def check(
        self,
        handles: Sequence[str],
        *,
        issued_at: int,
        rate: tuple[str, int] | None = None,
        proof: tuple[str, int] | None = None,
    ) -> None:
        """Raise if any handle kills a token issued at `issued_at`; count the use when capped.

        `rate` = (delegation id, uses per hour) counts this use in the same round trip;
        `proof` = (replay key, seconds) records a DPoP proof's jti there too.

        Raises:
            TokenRevoked: a handle revokes the token.
            BudgetExceeded: its delegation was revoked for having spent its budget.
            DpopProofInvalid: the proof's jti was recorded already (a replayed proof).
            RateLimited: the delegation's hourly cap is used up.
            StoreUnavailable: Redis cannot answer (fail closed).
        """
        now = time.time()
        counter = f"{PREFIX}rate:{rate[0]}:{int(now // 3600)}" if rate is not None else None
        epoch = self.replication.epoch
        async with guard("checking revocation"):
            values, used, fresh = await self._read(handles, counter, proof)
        if self.replication.epoch != epoch:  # the primary switched meanwhile: maybe stale
            raise StoreUnavailable(
                "state store primary changed while checking revocation; nothing was issued",
                retry_after=1,
            )
        for key, value in zip(handles, values, strict=True):
            if value is None:
                continue
            if key.startswith(f"{PREFIX}rev:"):
                if value.startswith(BUDGET_MARK):
                    raise budget_exceeded(value)
                raise TokenRevoked("token revoked: its delegation was revoked", handle="delegation")
            if key.startswith(f"{PREFIX}out:"):
                raise TokenRevoked("token revoked: the session was signed out", handle="session")
            if key.startswith(f"{PREFIX}kid:"):
                raise signing_key_revoked()
            if issued_at < float(value):
                kind = key.removeprefix(PREFIX).split(":")[1]
                handle = {"cred": "credential"}.get(kind, kind)
                raise TokenRevoked(f"token revoked: its {handle} was revoked", handle=handle)
        if not fresh:
            raise DpopProofInvalid(
                "the DPoP proof was used already (its jti is taken): make a new proof for"
                " every request"
            )
        if rate is not None and used is not None and used > rate[1]:
            raise RateLimited(
                f"this delegation allows {rate[1]} exchanges per hour",
                retry_after=3600 - int(now % 3600),
            )

    async def read(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys` (handles and reasons) in one round trip.

        Raises: StoreUnavailable.
        """
        async with guard("reading revocations"):
            values, _, _ = await self._read(keys, None, None)
        return values

    async def _read(
        self, handles: Sequence[str], counter: str | None, proof: tuple[str, int] | None
    ) -> tuple[list[bytes | None], int | None, bool]:
        """The handles' values, with a counter the use it counted, and whether a proof's
        jti was new (True without a proof): one round trip.

        One MGET where Redis allows it: it costs the client half the CPU of a pipeline of
        GETs, and this runs on every request; with a proof's jti, one script that does the
        MGET and the SET NX (a pipeline of the two costs the client twice as much). A
        cluster spreads the keys over hash slots, so there they stay a pipeline of GETs (one
        round trip per node) and the SET.
        """
        if self._pipe is not None:
            return await self._read_piped(handles, counter, proof)
        if counter is None and proof is None and not self._cluster:
            values = await self.redis.mget(handles) if handles else []
            return cast(list[bytes | None], values), None, True
        if counter is None and proof is not None and not self._cluster:
            answer = list(await self._check_with_jti(keys=[*handles, proof[0]], args=[proof[1]]))
            return cast(list[bytes | None], answer[:-1]), None, int(answer[-1]) == 1
        pipe = self.redis.pipeline(transaction=False)
        if self._cluster:
            for key in handles:
                pipe.get(key)
        else:
            pipe.mget(handles)
        if counter is not None:
            pipe.incr(counter)
            pipe.expire(counter, 3700)
        if proof is not None:
            pipe.set(proof[0], b"1", nx=True, ex=proof[1])
        results = await pipe.execute()
        values = results[: len(handles)] if self._cluster else results[0]
        at = len(handles) if self._cluster else 1
        used = int(results[at]) if counter is not None else None
        fresh = bool(results[-1]) if proof is not None else True
        return cast(list[bytes | None], list(values)), used, fresh

    async def _read_piped(
        self, handles: Sequence[str], counter: str | None, proof: tuple[str, int] | None
    ) -> tuple[list[bytes | None], int | None, bool]:
        """`_read` on the pipe (one plain Redis): the same commands, one round trip."""
        assert self._pipe is not None
        if counter is None and proof is not None:
            script = self._check_with_jti
            answer = await self._pipe.eval(
                _CHECK_WITH_JTI, script.sha, [*handles, proof[0]], [proof[1]]
            )
            return answer[:-1], None, int(answer[-1]) == 1
        commands: list[tuple[str | bytes | int, ...]] = [("MGET", *handles)] if handles else []
        if counter is not None:
            commands += [("INCR", counter), ("EXPIRE", counter, 3700)]
        if proof is not None:
            commands.append(("SET", proof[0], b"1", "NX", "EX", proof[1]))
        if not commands:
            return [], None, True
        replies = await self._pipe.execute(*commands)
        values = replies[0] if handles else []
        used = int(replies[1 if handles else 0]) if counter is not None else None
        fresh = replies[-1] is not None if proof is not None else True
        return list(values), used, fresh
