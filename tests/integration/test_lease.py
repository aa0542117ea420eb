"""The lease the AWS cut's writer and the spend follower share (broker/lease.py), on a
real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from broker.lease import Lease

pytestmark = pytest.mark.integration


def test_one_holder_at_a_time_and_a_release_frees_only_its_own_lease(redis_url: str) -> None:
    async def main() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        try:
            one, two = (Lease(redis, "vouch:test:lease", ttl_ms=200) for _ in range(2))
            assert (await one.hold(), await two.hold()) == (True, False)
            assert await one.hold()  # renewing its own
            await one.release()
            assert await two.hold()  # at once, not after the lapse
            await one.release()  # not its lease any more: nothing happens
            assert await redis.get("vouch:test:lease") == two.holder.encode()
            await asyncio.sleep(0.3)  # two stopped renewing: its lease lapses
            assert await one.hold()
            assert not await two.hold()
        finally:
            await redis.aclose()

    asyncio.run(main())
