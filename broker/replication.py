"""Acknowledged writes: a revocation is acknowledged only once no failover can lose it; and
a check of the Redis topology that promise relies on, at start and in /readyz.

The rule (docs/operating.md, "Replication and failover"): the write is on the primary (the
node a majority of the sentinels name; the cluster node serving the key's slot; the one
Redis), and `WAIT` confirms it on every replica that could ever be promoted in its place:
- Sentinel: every replica the sentinels list, reachable or not (a sentinel forgets none
  until `SENTINEL RESET`; one seen down for `GONE_AFTER_S` excepted, see
  `SentinelView.waited`), and every replica the primary reports;
- Cluster: every replica the primary reports or the cluster lists for it, and at least
  `revocation_replicas` (which the check requires to be the replicas per primary);
- one Redis: the replicas connected to it, and at least `revocation_replicas`.

Why every replica, not some: when a primary is cut off (paused, partitioned) a replica is
promoted, and the old primary may come back believing it is still the primary, with other
replicas still attached for a moment. A `WAIT` for fewer than all replicas can then be
satisfied by a replica that is about to resynchronise from the new primary and drop the
write. A write confirmed by every replica is on whichever node is promoted; and while any
replica is not replicating from the primary (the old primary before Sentinel demotes it, a
node not back yet) nothing is acknowledged, so no node that lacks an acknowledged
revocation can be answering as a primary.

A write that is not confirmed raises `RevocationUnconfirmed`: it may or may not have been
recorded, and the client must send the same (idempotent) request again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from broker.errors import RevocationUnconfirmed, StoreUnavailable
from broker.sentinel import LOST, MajoritySentinel, PrimaryPool, SentinelWatch, lost_connection
from broker.settings import Settings
from broker.store import connect, guard, text

log = logging.getLogger("vouch.redis")

Mode = Literal["single", "sentinel", "cluster"]
CHECK_EVERY_S = 5.0
"""/readyz asks the whole topology at most this often (a PING every time)."""


async def command(client: aioredis.Redis, *args: str) -> Any:
    """A command redis-py has no typed method for (ROLE, CLUSTER NODES)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def unconfirmed(why: str) -> RevocationUnconfirmed:
    return RevocationUnconfirmed(
        f"not confirmed: {why}. It may not have been recorded: send the same request again"
        " until it is confirmed (repeating it is safe)",
        retry_after=1,
    )


@dataclass
class Topology:
    """What the check found: the primary, the replicas a revocation waits for, those of
    them that are down, and settings that can lose acknowledged revocations."""

    mode: Mode
    primary: str = ""
    replicas: int = 0
    down: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)

    def public(self) -> dict[str, object]:
        """For /readyz: no host names, only what an operator acts on."""
        return {
            "mode": self.mode,
            "replicas": self.replicas,
            "replicas_down": len(self.down),
            "unsafe": self.unsafe,
        }


@dataclass(frozen=True)
class _Target:
    node: aioredis.Redis
    where: str
    replicas: int
    """How many must confirm the write (-1: the node is not a primary)."""


class Replication:
    """Acknowledged writes and the topology check for the client `redis`."""

    def __init__(
        self, redis: aioredis.Redis, *, replicas: int, wait_ms: int, allow_unsafe: bool = False
    ) -> None:
        self.redis = redis
        self.floor = replicas
        self.wait_ms = wait_ms
        self.allow_unsafe = allow_unsafe
        pool = getattr(redis, "connection_pool", None)
        self.pool = pool if isinstance(pool, PrimaryPool) else None
        self.mode: Mode = (
            "cluster"
            if isinstance(cast(object, redis), RedisCluster)
            else "sentinel"
            if self.pool is not None
            else "single"
        )
        self._checked: tuple[float, Topology] | None = None

    @property
    def epoch(self) -> int:
        """Bumped each time the Sentinel pool dropped its connections after a switch."""
        return self.pool.epoch if self.pool is not None else 0

    def watch(self) -> SentinelWatch | None:
        """The task to run beside the app (Sentinel only)."""
        return SentinelWatch(self.pool) if self.pool is not None else None

    # --- writes -----------------------------------------------------------------------------

    async def write(
        self,
        key: str,
        value: bytes | str,
        *,
        ttl_s: int | None,
        what: str = "recording a revocation",
    ) -> None:
        """SET `key` (for good when `ttl_s` is None) and return once no failover can lose it.

        Raises:
            StoreUnavailable: Redis could not be asked; nothing was written.
            RevocationUnconfirmed: not confirmed; it may or may not have been recorded.
        """
        for attempt in range(2):
            async with guard(what):  # only reads so far: nothing is changed if this fails
                target = await self._target(key)
            if target.replicas < 0:  # a cluster node that is no longer the slot's primary
                if attempt == 1:
                    raise unconfirmed(f"{target.where} is not a primary")
                await self._refresh_slots(what)
                continue
            try:
                await self._set_and_wait(target, key, value, ttl_s)
            except ResponseError as exc:
                # A cluster slot that moved since the map was read: once more, asked afresh.
                if self.mode != "cluster" or attempt == 1 or not str(exc).startswith("MOVED"):
                    raise unconfirmed(f"Redis refused it ({exc})") from exc
                await self._refresh_slots(what)
                continue
            except (RedisError, *LOST) as exc:
                if not isinstance(exc, RedisError) and not lost_connection(exc):
                    raise
                raise unconfirmed(
                    f"Redis failed while recording it ({type(exc).__name__})"
                ) from exc
            finally:
                if target.node is not self.redis:
                    await target.node.aclose()
            break
        if self.mode == "sentinel":
            await self._still_primary(target.where)

    async def _still_primary(self, where: str) -> None:
        """Raises: RevocationUnconfirmed: the sentinels no longer agree on `where`."""
        try:
            still, _ = await self._sentinel_primary()
        except (RedisError, *LOST) as exc:
            if not isinstance(exc, RedisError) and not lost_connection(exc):
                raise
            raise unconfirmed("the sentinels could not confirm the primary after it") from exc
        if still != where:
            raise unconfirmed(f"the primary changed from {where} while it was written")

    async def _refresh_slots(self, what: str) -> None:
        """Ask the cluster again which node serves which slots.

        Raises: StoreUnavailable.
        """
        async with guard(what):
            await cast(RedisCluster, self.redis).nodes_manager.initialize()

    async def _target(self, key: str) -> _Target:
        """The primary to write `key` on and how many replicas must confirm it.

        Raises:
            RedisError: it could not be asked. RevocationUnconfirmed: not a primary.
        """
        if self.mode == "sentinel":
            where, listed = await self._sentinel_primary()
            host, _, port = where.rpartition(":")
            assert self.pool is not None
            node = self._node(host, int(port), self.pool.connection_kwargs)
        elif self.mode == "cluster":
            cluster = cast(RedisCluster, self.redis)
            await cluster.initialize()
            owner = cluster.get_node_from_key(key)
            if owner is None:
                raise unconfirmed("no cluster node serves the key's slot")
            where = f"{owner.host}:{owner.port}"
            node = self._node(owner.host, int(owner.port), cluster.get_connection_kwargs())
        else:
            where, listed, node = "Redis", 0, self.redis
        try:
            if self.mode == "cluster":
                listed = replicas_listed(text(await command(node, "CLUSTER", "NODES")))
            role = await command(node, "ROLE")
        except BaseException:
            if node is not self.redis:
                await node.aclose()
            raise
        if text(role[0]) != "master":
            if node is not self.redis:
                await node.aclose()
            if self.mode == "cluster":  # the slot map is stale: the caller asks again
                return _Target(self.redis, where, -1)
            raise unconfirmed(f"{where} is not a primary")
        return _Target(node, where, max(self.floor, listed, len(role[2])))

    async def _sentinel_primary(self) -> tuple[str, int]:
        """The primary a majority of sentinels name, and the most replicas one of them lists."""
        assert self.pool is not None
        manager = cast(MajoritySentinel, self.pool.sentinel_manager)
        primary, views = await manager.agreed(str(self.pool.service_name))
        return f"{primary[0]}:{primary[1]}", max(v.waited for v in views)

    async def _set_and_wait(
        self, target: _Target, key: str, value: bytes | str, ttl_s: int | None
    ) -> None:
        """SET, then WAIT for every replica on the same connection (WAIT counts the replicas
        that have this connection's writes).

        Raises: RedisError, RevocationUnconfirmed.
        """
        if target.replicas == 0:
            await target.node.set(key, value, ex=ttl_s)
            return
        # WAIT blocks up to wait_ms, longer than a round trip may take on the shared pool.
        node = target.node if target.node is not self.redis else self._waiting_client()
        try:
            pipe = node.pipeline(transaction=False)
            pipe.set(key, value, ex=ttl_s)
            pipe.execute_command("WAIT", target.replicas, self.wait_ms)
            _, acked = await pipe.execute()
        finally:
            if node is not target.node:
                await node.aclose()
        if int(acked) < target.replicas:
            raise unconfirmed(
                f"written on the primary but acknowledged by {acked} of {target.replicas}"
                f" replicas in {self.wait_ms} ms, so a failover could lose it"
            )

    def _wait_timeout(self, kwargs: dict[str, Any]) -> float:
        return float(kwargs.get("socket_timeout") or 1.0) + self.wait_ms / 1000

    def _node(self, host: str, port: int, kwargs: dict[str, Any]) -> aioredis.Redis:
        """A direct client of one node, with the pool's credentials, a read timeout that
        outlasts WAIT, and no retry (redis-py's default backs off for seconds; the client
        retries the request instead)."""
        keep = ("username", "password", "db", "socket_connect_timeout")
        return aioredis.Redis(
            host=host,
            port=port,
            socket_timeout=self._wait_timeout(kwargs),
            retry=Retry(NoBackoff(), 0),
            **{k: kwargs[k] for k in keep if kwargs.get(k) is not None},
        )

    def _waiting_client(self) -> aioredis.Redis:
        """One connection like the single Redis pool's, with a read timeout that outlasts
        WAIT (any URL form: TCP, TLS, unix socket)."""
        pool = self.redis.connection_pool
        kwargs = {
            **pool.connection_kwargs,
            "socket_timeout": self._wait_timeout(pool.connection_kwargs),
            "retry": Retry(NoBackoff(), 0),
        }
        own = aioredis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=1, **kwargs
        )
        return aioredis.Redis.from_pool(own)

    # --- the topology check -----------------------------------------------------------------

    async def inspect(self) -> Topology:
        """The topology and what in it can lose acknowledged revocations.

        Raises:
            RedisError, MasterNotFoundError: it could not be asked.
        """
        if self.mode == "sentinel":
            return await self._inspect_sentinel()
        if self.mode == "cluster":
            return await self._inspect_cluster()
        role = await command(self.redis, "ROLE")
        return Topology("single", replicas=max(self.floor, len(role[2])))

    async def ready(self) -> dict[str, object] | None:
        """What /readyz adds about a replicated topology (None for one Redis), asked at most
        every CHECK_EVERY_S.

        Raises:
            StoreUnavailable: it cannot be asked, or it can lose acknowledged revocations
                (unless `allow_unsafe`).
        """
        if self.mode == "single":
            return None
        now = time.monotonic()
        if self._checked is None or now - self._checked[0] > CHECK_EVERY_S:
            try:
                self._checked = (now, await self.inspect())
            except (RedisError, OSError) as exc:
                raise StoreUnavailable(f"the Redis topology cannot be checked: {exc}") from exc
        found = self._checked[1]
        if found.unsafe and not self.allow_unsafe:
            raise StoreUnavailable(
                "the Redis topology can lose acknowledged revocations: "
                + "; ".join(found.unsafe)
                + " (docs/operating.md, Redis; VOUCH_REDIS_ALLOW_UNSAFE=true to run anyway)"
            )
        return found.public()

    async def _inspect_sentinel(self) -> Topology:
        assert self.pool is not None
        manager = cast(MajoritySentinel, self.pool.sentinel_manager)
        primary, views = await manager.agreed(str(self.pool.service_name))
        down = {f"{r.host}:{r.port}" for v in views for r in v.replicas if r.down_s > 0}
        found = Topology(
            "sentinel",
            primary=f"{primary[0]}:{primary[1]}",
            replicas=max(self.floor, *(v.waited for v in views)),
            down=sorted(down),
        )
        up = {(r.host, r.port) for v in views for r in v.replicas} - {
            (a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in down
        }
        for host, port in [primary, *sorted(up)]:
            found.unsafe += await self._persistence(host, port, self.pool.connection_kwargs)
        return found

    async def _inspect_cluster(self) -> Topology:
        cluster = cast(RedisCluster, self.redis)
        await cluster.initialize()
        kwargs = cluster.get_connection_kwargs()
        some = cluster.get_random_node()
        asked = self._node(some.host, int(some.port), kwargs)
        try:
            nodes = parse_cluster_nodes(text(await command(asked, "CLUSTER", "NODES")))
        finally:
            await asked.aclose()
        primaries = [n for n in nodes if "master" in n.flags and n.slots]
        per_primary = {p.id: [n for n in nodes if n.master == p.id] for p in primaries}
        most = max((len(r) for r in per_primary.values()), default=0)
        found = Topology(
            "cluster",
            primary=f"{len(primaries)} primaries",
            replicas=max(self.floor, most),
            down=[n.address for n in nodes if "fail" in n.flags or "fail?" in n.flags],
        )
        if self.floor < most:
            found.unsafe.append(
                f"VOUCH_REVOCATION_REPLICAS={self.floor} is below the {most} replicas of a"
                " cluster primary: a promoted replica would confirm revocations alone while"
                " the old primary may still answer for its slots"
            )
        for node in nodes:
            if node.address not in found.down:
                host, _, port = node.address.rpartition(":")
                found.unsafe += await self._persistence(host, int(port), kwargs)
        return found

    async def _persistence(self, host: str, port: int, kwargs: dict[str, Any]) -> list[str]:
        """Problems with one node's persistence: without the AOF a restarted node is empty
        and its replicas copy the empty data set; `appendfsync no` loses recent writes."""
        node = self._node(host, port, kwargs)
        try:
            info = await node.info("persistence")
            if int(info.get("aof_enabled", 0)) != 1:
                return [
                    f"{host}:{port} runs without the append-only file (appendonly no): "
                    "restarted, it comes back empty and its replicas copy the empty data set"
                ]
            with contextlib.suppress(ResponseError):  # CONFIG may be renamed away
                fsync = await node.config_get("appendfsync")
                if fsync.get("appendfsync") == "no":
                    return [f"{host}:{port} runs appendfsync no: a crash loses recent writes"]
            return []
        finally:
            await node.aclose()


def check_at_start(settings: Settings) -> str | None:
    """Why `serve` must not start on this replicated Redis (None: it may). One Redis is not
    asked; an unreachable topology is logged, not fatal (/readyz keeps asking)."""
    if urlsplit(settings.redis_url).scheme not in ("redis+sentinel", "redis+cluster"):
        return None

    async def inspect() -> Topology:
        redis = connect(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 2.0))
        try:
            replication = Replication(
                redis, replicas=settings.revocation_replicas, wait_ms=settings.revocation_wait_ms
            )
            return await replication.inspect()
        finally:
            await redis.aclose()

    try:
        found = asyncio.run(inspect())
    except (RedisError, OSError) as exc:
        log.warning("the Redis topology could not be checked at start: %s", exc)
        return None
    if not found.unsafe:
        return None
    if settings.redis_allow_unsafe:
        log.warning(
            "running on a Redis topology that can lose acknowledged revocations: %s",
            "; ".join(found.unsafe),
        )
        return None
    return (
        "the Redis topology can lose acknowledged revocations: "
        + "; ".join(found.unsafe)
        + ". Fix it (docs/operating.md, Redis) or set VOUCH_REDIS_ALLOW_UNSAFE=true"
    )


@dataclass(frozen=True)
class ClusterNode:
    id: str
    address: str
    flags: frozenset[str]
    master: str
    slots: bool


def parse_cluster_nodes(reply: str) -> list[ClusterNode]:
    """`CLUSTER NODES`: id, ip:port@bus, flags, master id ("-"), ..., slot ranges."""
    nodes = []
    for line in reply.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        nodes.append(
            ClusterNode(
                id=fields[0],
                address=fields[1].partition("@")[0],
                flags=frozenset(fields[2].split(",")),
                master=fields[3],
                slots=len(fields) > 8,
            )
        )
    return nodes


def replicas_listed(reply: str) -> int:
    """How many replicas `CLUSTER NODES` (asked of a node) lists for that node itself,
    failing ones included."""
    nodes = parse_cluster_nodes(reply)
    me = next((n for n in nodes if "myself" in n.flags), None)
    return 0 if me is None else sum(n.master == me.id for n in nodes)
