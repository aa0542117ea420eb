"""Fixed-window rate limits in Redis, atomic per key (INCR + EXPIRE in one round trip).

Used on the unauthenticated or guessable doors: login and enroll begin, agent requests,
user-code approvals, polling. Each hit counts against the client address and, where there
is one, the identity it names, so neither a botnet on one account nor one host on many
accounts gets far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from broker.errors import RateLimited
from broker.store import PREFIX, guard

WINDOW_S = 60


@dataclass
class RateLimits:
    redis: aioredis.Redis
    per_minute: dict[str, int]

    async def hit(self, door: str, *, address: str, identity: str | None = None) -> None:
        """Count one attempt at `door`.

        Raises:
            RateLimited: the address or identity used up this minute's attempts.
            StoreUnavailable: Redis cannot answer.
        """
        limit = self.per_minute[door]
        now = time.time()
        window = int(now // WINDOW_S)
        keys = [f"{PREFIX}rl:{door}:a:{address}:{window}"]
        if identity:
            keys.append(f"{PREFIX}rl:{door}:i:{identity}:{window}")
        async with guard("counting attempts"):
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, WINDOW_S + 5)
            counts = (await pipe.execute())[::2]
        if max(counts) > limit:
            raise RateLimited(
                f"too many {door} attempts; try again in a minute",
                retry_after=WINDOW_S - int(now % WINDOW_S),
            )
