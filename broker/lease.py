"""One holder at a time across replicas: a lease in Redis, taken or renewed by its holder.

The AWS cut's writer (broker.aws_cut) and the spend follower (broker.spend_follower) each
run on one replica at a time. A holder renews its lease more often than it lapses; when
it stops renewing (a replica that died or stalled), another takes it once it lapses.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

# Take the lease if free, or extend it if it is ours.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Give it up if it is still ours (it may have lapsed and been taken since).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """The lease at `key`, held for `ttl_ms` from each `hold()` by this holder."""

    def __init__(self, redis: aioredis.Redis, key: str, *, ttl_ms: int) -> None:
        self.key = key
        self.ttl_ms = ttl_ms
        self.holder = secrets.token_hex(8)
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    async def hold(self) -> bool:
        """Take or renew the lease; True while this holder has it. Raises RedisError."""
        return bool(await self._hold(keys=[self.key], args=[self.holder, self.ttl_ms]))

    async def release(self) -> None:
        """Give the lease up if it is still ours, so another holder takes over at once."""
        await self._release(keys=[self.key], args=[self.holder])
