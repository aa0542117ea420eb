"""The Redis connection: bounded timeouts, one quick reconnect, and failures turned into 503.

Every Redis call goes through `guard()`, so an unreachable or slow Redis answers
`StoreUnavailable` and the broker fails closed instead of serving stale state.

URL forms (VOUCH_REDIS_URL):
- ``redis://[:password@]host:port/db``, ``rediss://...``, ``unix:///path?db=0``: one Redis;
- ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``: the primary of
  `service` as a majority of the sentinels name it, dropped on a switch (broker.sentinel);
- ``redis+cluster://[:password@]host:port[,host:port...]``: a Redis Cluster (startup nodes).

Every multi-key read is a non-transactional pipeline (one round trip on one Redis, one per
node on a cluster), so no code path needs its keys in one hash slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from broker.errors import StoreUnavailable
from broker.sentinel import LOST, lost_connection, sentinel_client

PREFIX = "vouch:"


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes; redis-py's types also admit str)."""
    return value.decode() if isinstance(value, bytes) else value


def _hosts(netloc: str) -> tuple[str | None, list[tuple[str, int]]]:
    password, _, hosts = netloc.rpartition("@")
    pairs = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        pairs.append((host or "127.0.0.1", int(port or 6379)))
    return (unquote(password.partition(":")[2] or password) or None), pairs


def connect(url: str, *, timeout_s: float, max_connections: int = 64) -> aioredis.Redis:
    """A pooled client whose every round trip is bounded by `timeout_s`.

    A cluster client is returned as `aioredis.Redis`: it speaks the same commands, and the
    stores use only commands that work on both.
    """
    common: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        # One immediate retry replaces a pooled connection that died with a Redis restart.
        "retry": Retry(NoBackoff(), 1),
        "decode_responses": False,
    }
    parts = urlsplit(url)
    if parts.scheme == "redis+sentinel":
        password, sentinels = _hosts(parts.netloc)
        service, _, db = parts.path.strip("/").partition("/")
        return sentinel_client(
            sentinels,
            service,
            password=password,
            db=int(db or 0),
            max_connections=max_connections,
            sentinel_timeout_s=timeout_s,
            **common,
        )
    if parts.scheme == "redis+cluster":
        password, nodes = _hosts(parts.netloc)
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in nodes],
            password=password,
            max_connections=max_connections,
            **common,
        )
        return cast(aioredis.Redis, cluster)
    # A blocking pool: past `max_connections` in flight a request waits (up to the timeout)
    # for a connection instead of failing at once with a 503.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        health_check_interval=30,
        **common,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


async def read_many(redis: aioredis.Redis, keys: list[str]) -> list[bytes | None]:
    """GET of several keys in one pipeline (works across cluster slots, unlike MGET)."""
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return cast(list[bytes | None], await pipe.execute())


@asynccontextmanager
async def guard(what: str) -> AsyncIterator[None]:
    """Turn any Redis failure into a 503 naming what could not be done.

    Raises:
        StoreUnavailable: Redis did not answer in time or refused.
    """
    try:
        yield
    except (RedisError, *LOST) as exc:
        if not isinstance(exc, RedisError) and not lost_connection(exc):
            raise
        raise StoreUnavailable(
            f"state store unavailable while {what}; nothing was changed or issued",
            retry_after=1,
        ) from exc
