"""The Redis connection: bounded timeouts, one quick reconnect, and failures turned into 503.

Every Redis call goes through `guard()`, so an unreachable or slow Redis answers
`StoreUnavailable` and the broker fails closed instead of serving stale state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from broker.errors import StoreUnavailable

PREFIX = "vouch:"


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes; redis-py's types also admit str)."""
    return value.decode() if isinstance(value, bytes) else value


def connect(url: str, *, timeout_s: float, max_connections: int = 64) -> aioredis.Redis:
    """A pooled client whose every round trip is bounded by `timeout_s`."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # One immediate retry replaces a pooled connection that died with a Redis restart.
        retry=Retry(NoBackoff(), 1),
        max_connections=max_connections,
        decode_responses=False,
        health_check_interval=30,
    )


@asynccontextmanager
async def guard(what: str) -> AsyncIterator[None]:
    """Turn any Redis failure into a 503 naming what could not be done.

    Raises:
        StoreUnavailable: Redis did not answer in time or refused.
    """
    try:
        yield
    except RedisError as exc:
        raise StoreUnavailable(
            f"state store unavailable while {what}; nothing was changed or issued",
            retry_after=1,
        ) from exc
