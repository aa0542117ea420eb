"""Redis Sentinel: which node is the primary, by a majority of the sentinels, and a pool
that never keeps talking to a node once the sentinels have moved on.

redis-py's Sentinel pool asks a sentinel for the primary only when it opens a connection,
and believes the first sentinel that answers. After a failover its pooled connections
still reach the old primary, which goes on answering reads (a paused primary resumes
believing it is still the primary, and is demoted only seconds later): revocations
acknowledged on the new primary would be missing from those reads. So here:

- the primary is the node a majority of the configured sentinels name, in a state they
  consider up (`SENTINEL MASTER`; while a failover runs they name none, and nothing
  connects);
- a new connection asks the node its `ROLE` and is refused unless it is a primary;
- `SentinelWatch` subscribes to `+switch-master` on every sentinel and asks them again
  every `POLL_S`; on a switch (or a primary other than the pool's) it closes every pooled
  connection (idle ones at once, busy ones when released) and bumps `epoch`, so a read
  that began before the switch is refused (`Revocations` compares the epoch around each
  read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger("vouch.sentinel")


def text(value: bytes | str) -> str:
    """A Redis reply as text (broker.store has the same; this module comes before it)."""
    return value.decode() if isinstance(value, bytes) else value


def lost_connection(exc: BaseException) -> bool:
    """A connection lost under redis-py that it does not report as a RedisError (each seen
    when a node died under load in the failover soak; unhandled, they were 500s and they
    killed background loops):
    - uvloop (what `vouch-broker serve` runs) refuses a write on a closed transport with
      RuntimeError "... the handler is closed" (asyncio raises an OSError there);
    - redis-py's own connection code fails with AttributeError ("'NoneType' object has no
      attribute 'writelines'") when another task closed the connection under a command,
      as its cluster client does when it refreshes its slot map.
    """
    if isinstance(exc, RuntimeError):
        return "handler is closed" in str(exc)
    if isinstance(exc, AttributeError):
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = frame.tb_frame.f_code.co_filename if frame is not None else ""
        return where.endswith(os.path.join("redis", "asyncio", "connection.py"))
    return False


LOST = (RuntimeError, AttributeError)
"""The exception types `lost_connection` may recognise."""


POLL_S = 2.0
"""How often the watch asks the sentinels, besides listening for `+switch-master`."""


GONE_AFTER_S = 30.0
"""A replica a sentinel has seen down this long is no longer waited for (see `waited`)."""


@dataclass(frozen=True)
class Replica:
    host: str
    port: int
    down_s: float
    """How long the sentinel has seen it down (0: up)."""


@dataclass(frozen=True)
class SentinelView:
    """What one sentinel says about the service: its primary and the replicas it knows
    (every one it has seen, reachable or not: a sentinel forgets none until `SENTINEL
    RESET`)."""

    primary: tuple[str, int] | None
    replicas: tuple[Replica, ...]

    @property
    def waited(self) -> int:
        """The replicas a revocation must reach: all but those down for GONE_AFTER_S.

        A replica back from a pause or a restart (the old primary too, until Sentinel
        demotes it) is waited for, so nothing is acknowledged while it may answer with old
        data. One down that long is gone for this purpose: every broker has since dropped
        its connections to it (the watch asks the sentinels every POLL_S), and when it
        returns it is waited for again until it has caught up.
        """
        return sum(r.down_s < GONE_AFTER_S for r in self.replicas)


async def _view(sentinel: aioredis.Redis, service: str) -> SentinelView | None:
    try:
        state = cast(dict[str, Any], await sentinel.sentinel_master(service))
        replicas = await sentinel.sentinel_slaves(service)
    except (RedisError, *LOST) as exc:
        if not isinstance(exc, RedisError) and not lost_connection(exc):
            raise
        return None
    up = state["is_master"] and not (state["is_sdown"] or state["is_odown"])
    listed = tuple(
        Replica(
            text(r["ip"]),
            int(r["port"]),
            int(r.get("s-down-time", 0)) / 1000 if r["is_sdown"] or r["is_odown"] else 0.0,
        )
        for r in replicas
    )
    return SentinelView((text(state["ip"]), int(state["port"])) if up else None, listed)


class MajoritySentinel(Sentinel):
    """A `Sentinel` that trusts a primary only when most configured sentinels name it."""

    async def views(self, service: str) -> list[SentinelView | None]:
        """Every sentinel's view, asked at once (None: it did not answer)."""
        return list(await asyncio.gather(*(_view(s, service) for s in self.sentinels)))

    async def agreed(self, service: str) -> tuple[tuple[str, int], list[SentinelView]]:
        """The primary a majority names, and the views of the sentinels that name it.

        Raises:
            MasterNotFoundError: no majority (a failover is running, or sentinels are down).
        """
        views = await self.views(service)
        named = [v for v in views if v is not None and v.primary is not None]
        for primary in {v.primary for v in named}:
            agreeing = [v for v in named if v.primary == primary]
            if primary is not None and len(agreeing) > len(self.sentinels) // 2:
                return primary, agreeing
        raise MasterNotFoundError(
            f"no primary for {service!r} named by a majority of the {len(self.sentinels)} sentinels"
        )

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        primary, _ = await self.agreed(service_name)
        return primary


class PrimaryConnection(SentinelManagedConnection):
    """A connection that checks, once connected, that the node is a primary."""

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        await super().on_connect_check_health(check_health=check_health)
        await self.send_command("ROLE", check_health=False)
        role = await self.read_response()
        if not isinstance(role, list) or text(role[0]) != "master":
            raise RedisConnectionError(f"{self.host}:{self.port} is not a primary")


class PrimaryPool(SentinelConnectionPool):
    """The Sentinel pool, with primary-checked connections and an `epoch` that counts the
    times it dropped them after a switch."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        kwargs.setdefault("connection_class", PrimaryConnection)
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.epoch = 0

    async def drop(self, why: str) -> None:
        """Close every connection: idle ones now, those in use when they are released
        (closing them under a command can break redis-py mid-connect). Reads in flight
        are refused all the same: `epoch` changes under them."""
        self.epoch += 1
        self.master_address = None
        log.warning("closing every connection to the Redis primary: %s", why)
        await self.update_active_connections_for_reconnect()  # type: ignore[no-untyped-call]
        with contextlib.suppress(RedisError, OSError):
            await self.disconnect(inuse_connections=False)


def sentinel_client(
    sentinels: Sequence[tuple[str, int]],
    service: str,
    *,
    password: str | None,
    db: int,
    max_connections: int,
    sentinel_timeout_s: float,
    **common: Any,
) -> aioredis.Redis:
    """A client of the primary of `service`, through a `PrimaryPool`."""
    # redis-py's default retry backs off for seconds: one immediate retry, as for the pool.
    asking = {
        "socket_timeout": sentinel_timeout_s,
        "socket_connect_timeout": sentinel_timeout_s,
        "retry": Retry(NoBackoff(), 1),
    }
    manager = MajoritySentinel(sentinels, sentinel_kwargs=asking, **common)  # type: ignore[no-untyped-call]
    client: aioredis.Redis = manager.master_for(
        service,
        connection_pool_class=PrimaryPool,
        password=password,
        db=db,
        max_connections=max_connections,
    )
    return client


class SentinelWatch:
    """Closes the pool's connections as soon as the sentinels switch primaries."""

    def __init__(self, pool: PrimaryPool) -> None:
        self.pool = pool
        manager = pool.sentinel_manager
        assert isinstance(manager, MajoritySentinel)
        self.manager = manager
        self.service = str(pool.service_name)

    async def run(self) -> None:
        """Listen on every sentinel and poll them, until cancelled."""
        listeners = [
            asyncio.create_task(self._listen(s.connection_pool.connection_kwargs))
            for s in self.manager.sentinels
        ]
        try:
            while True:
                await asyncio.sleep(POLL_S)
                await self.poll()
        finally:
            for task in listeners:
                task.cancel()
            for task in listeners:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def poll(self) -> None:
        """Drop the pool's connections if most sentinels answer and do not name the primary
        they reach (another node, or none while a failover runs). Sentinels that do not
        answer change nothing: without them no failover can happen either."""
        current = self.pool.master_address
        if current is None:
            return
        views = await self.manager.views(self.service)
        answered = [v for v in views if v is not None]
        if len(answered) <= len(views) // 2:
            return
        agreeing = [v for v in answered if v.primary == current]
        if len(agreeing) <= len(views) // 2:
            named = sorted({str(v.primary) for v in answered})
            await self.pool.drop(f"the sentinels name {', '.join(named)}, not {current}")

    async def _listen(self, address: dict[str, Any]) -> None:
        """Subscribe to `+switch-master` on one sentinel, resubscribing after errors.

        A connection of its own without a read timeout: it waits for messages.
        """
        sentinel = aioredis.Redis(
            host=address["host"],
            port=address["port"],
            socket_connect_timeout=address.get("socket_timeout") or 1.0,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            while True:
                pubsub = sentinel.pubsub()
                try:
                    await pubsub.subscribe("+switch-master")
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        # "<service> <old ip> <old port> <new ip> <new port>"
                        fields = text(message["data"]).split()
                        if fields and fields[0] == self.service:
                            await self.pool.drop("+switch-master " + " ".join(fields[1:]))
                except (RedisError, OSError, *LOST) as exc:
                    if isinstance(exc, LOST) and not lost_connection(exc):
                        raise
                    await asyncio.sleep(1.0)  # the poll covers what this one did not say
                finally:
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
        finally:
            await sentinel.aclose()
