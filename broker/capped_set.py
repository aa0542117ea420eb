"""Sorted sets of expiring members (score = expiry) that never hold more than a cap.

Used for what must stay bounded under parallel requests on any number of replicas: a
person's pending agent requests, a source address's, a person's active delegations. The
prune, count and add are one Lua script on one key, so two racing adds cannot both take
the last place (and the script works on a Redis Cluster: it names a single key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from broker.store import guard

_ADD_CAPPED = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, held, first[2] or '0'}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
return {1, held + 1, '0'}
"""


@dataclass(frozen=True)
class Placed:
    """The answer of `CappedSets.add`."""

    added: bool
    held: int
    """Unexpired members after the call."""
    next_free_at: int
    """When refused: the expiry of the member that leaves first (0 when added)."""


class CappedSets:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(_ADD_CAPPED)

    async def add(self, key: str, member: str, *, expires_at: int, now: int, cap: int) -> Placed:
        """Add `member` (expiring at `expires_at`) unless `cap` unexpired members are there.

        Raises:
            StoreUnavailable: Redis cannot answer.
        """
        async with guard("counting what is pending"):
            reply = await self._add(keys=[key], args=[now, cap, expires_at, member])
        added, held, first = cast(list[int | bytes], reply)
        return Placed(bool(added), int(held), int(float(first)) if not added else 0)

    async def remove(self, key: str, member: str) -> None:
        async with guard("freeing a place"):
            await self.redis.zrem(key, member)
