"""One pipelined Redis connection per worker for the revocation check, the hot path's client.

Every exchange makes one Redis round trip (broker/revocation.py). Through redis-py's asyncio
client that costs this process 44 us of CPU (hiredis parser; 54 us without): a pooled
connection taken and given back, retry and timeout wrappers, a stream reader. Here a command
is packed by hiredis, the commands of one event-loop turn leave in one write on one
connection, and replies are parsed by hiredis as they arrive and matched in order (Redis
answers a connection's commands in the order it received them): about 7 us per check.

Used for one plain Redis (``redis://``, ``unix://``; broker/store.py `connect`) and only for
the checks; TLS, Sentinel and Cluster, and every write, keep redis-py. It fails like the pooled
client: a command unanswered within the timeout fails with `redis.exceptions.TimeoutError`
and drops the connection (every command queued behind it fails too: none is answered
late), a lost connection fails its commands with `ConnectionError`, each failed call is
retried once on a new connection (redis-py's `Retry(NoBackoff(), 1)`), and `guard()` turns
what is left into a 503. Nothing is cached: each check reads Redis when it runs, so a
revocation acknowledged before a check was sent is seen by it (invariant 7).
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import (
    BlockingConnectionPool,
    Connection,
    UnixDomainSocketConnection,
)
from redis.exceptions import AuthenticationError, BusyLoadingError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = Sequence[str | bytes | int]

# redis-py connection options that change nothing for these commands; any other (TLS,
# RESP3, a credential provider, keepalive tuning, ...) keeps the checks on redis-py.
_NEUTRAL = {
    "health_check_interval",
    "decode_responses",
    "retry",
    "himport_registry",
    "maint_notifications_pool_handler",
    "maint_notifications_config",
    "orig_host_address",
    "orig_socket_timeout",
    "orig_socket_connect_timeout",
    "socket_timeout",
    "socket_connect_timeout",
    "host",
    "port",
    "path",
    "db",
    "username",
    "password",
}


@dataclass(frozen=True)
class Address:
    """Where the Redis is and how to open a connection to it."""

    host: str = ""
    port: int = 6379
    path: str = ""
    """A Unix socket instead of host and port."""
    db: int = 0
    username: str | None = None
    password: str | None = None


def pipe_for(client: aioredis.Redis) -> RedisPipe | None:
    """A pipe to the same Redis as `client` (broker/store.py `connect`), with its timeout, or
    None when that is not one plain Redis (TLS, Sentinel, Cluster), has no timeout, or has
    options the pipe does not speak."""
    pool = getattr(client, "connection_pool", None)
    if type(client) is not aioredis.Redis or type(pool) is not BlockingConnectionPool:
        return None
    kind = pool.connection_class
    options = pool.connection_kwargs
    if kind not in (Connection, UnixDomainSocketConnection) or set(options) - _NEUTRAL:
        return None
    timeout_s = options.get("socket_timeout")
    if options.get("decode_responses") or not timeout_s:
        return None
    address = Address(
        host=str(options.get("host", "")) if kind is Connection else "",
        port=int(options.get("port", 6379)),
        path=str(options.get("path", "")) if kind is UnixDomainSocketConnection else "",
        db=int(options.get("db", 0) or 0),
        username=options.get("username"),
        password=options.get("password"),
    )
    return RedisPipe(address, timeout_s=float(timeout_s))


class RedisPipe:
    """Commands sent on one shared connection, answered in order."""

    def __init__(self, address: Address, *, timeout_s: float) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._link: _Link | None = None
        self._opening: asyncio.Task[_Link] | None = None

    async def execute(self, *commands: Command) -> list[Any]:
        """The replies to `commands`, sent together (one round trip).

        Raises:
            ResponseError: Redis refused a command (the first such reply).
            redis ConnectionError, TimeoutError: the retry on a new connection failed too.
        """
        packed = _pack(commands)
        try:
            replies = await self._send(packed, len(commands))
        except (RedisConnectionError, RedisTimeoutError):
            replies = await self._send(packed, len(commands))
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise _refusal(reply)
        return replies

    async def eval(self, script: str, sha: str, keys: Sequence[str], args: Command) -> Any:
        """A Lua script by its SHA1, sent whole once if this Redis does not have it yet.

        Raises: as `execute`.
        """
        try:
            (reply,) = await self.execute(("EVALSHA", sha, len(keys), *keys, *args))
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            (reply,) = await self.execute(("EVAL", script, len(keys), *keys, *args))
        return reply

    async def close(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        link, self._link = self._link, None
        if link is not None:
            link.fail(RedisConnectionError("closed"))

    async def _send(self, packed: bytes, count: int) -> list[Any]:
        link = self._link
        if link is None or link.broken or link.loop is not asyncio.get_running_loop():
            link = await self._open()
        return await link.send(packed, count)

    async def _open(self) -> _Link:
        """The live link, opened once for every caller that finds none; in a task of its own,
        so a caller that gives up (a client gone) does not fail the others' connection."""
        loop = asyncio.get_running_loop()
        opening = self._opening
        if opening is None or opening.done() or opening.get_loop() is not loop:
            opening = self._opening = loop.create_task(self._connect())
            opening.add_done_callback(_retrieved)
        return await asyncio.shield(opening)

    async def _connect(self) -> _Link:
        try:
            link = await _connect(self.address, self.timeout_s)
        except TimeoutError as exc:
            raise RedisTimeoutError("Timeout connecting to Redis") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to Redis: {exc}") from exc
        self._link = link
        return link


def _retrieved(task: asyncio.Task[_Link]) -> None:
    """Mark a failed opening as seen: every caller may have given up on it."""
    if not task.cancelled():
        task.exception()


def _pack(commands: Sequence[Command]) -> bytes:
    # hiredis's stub types its argument as a 1-tuple; any tuple of these types is taken.
    return b"".join(hiredis.pack_command(cast(Any, tuple(c))) for c in commands)


def _refusal(reply: ResponseError) -> RedisError:
    """redis-py's class for the errors it treats apart (a loading Redis is unavailable)."""
    if str(reply).startswith("LOADING"):
        return BusyLoadingError(str(reply))
    return reply


async def _connect(address: Address, timeout_s: float) -> _Link:
    """A connection, authenticated and on its database, within `timeout_s`.

    Raises: OSError, TimeoutError (builtin), AuthenticationError, ResponseError.
    """
    loop = asyncio.get_running_loop()
    link = _Link(loop, timeout_s)
    async with asyncio.timeout(timeout_s):
        if address.path:
            await loop.create_unix_connection(lambda: link, address.path)
        else:
            await loop.create_connection(lambda: link, address.host, address.port)
    hello: list[Command] = []
    if address.password is not None:
        user = () if address.username is None else (address.username,)
        hello.append(("AUTH", *user, address.password))
    if address.db:
        hello.append(("SELECT", address.db))
    if hello:
        packed = _pack(hello)
        for reply in await link.send(packed, len(hello)):
            if isinstance(reply, ResponseError):
                link.fail(RedisConnectionError("handshake refused"))
                if hello[0][0] == "AUTH":
                    raise AuthenticationError(str(reply))
                raise reply
    return link


@dataclass
class _Call:
    future: asyncio.Future[list[Any]]
    count: int
    deadline: float
    replies: list[Any] = field(default_factory=list)


class _Link(asyncio.Protocol):
    """One connection: a queue of calls in the order they were written, replies in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Call] = deque()
        self.outgoing: list[bytes] = []
        self.flushing = False
        self.timer: asyncio.TimerHandle | None = None
        self.broken: RedisError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        """The future replies of `count` commands packed in `packed`, queued to be written
        with whatever else this turn of the event loop sends."""
        if self.broken is not None:
            raise self.broken
        future = self.loop.create_future()
        call = _Call(future, count, self.loop.time() + self.timeout_s)
        self.pending.append(call)
        self.outgoing.append(packed)
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._flush)
        if self.timer is None:
            self.timer = self.loop.call_at(call.deadline, self._expire)
        return future

    def _flush(self) -> None:
        self.flushing = False
        if self.broken is None and self.transport is not None and self.outgoing:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisConnectionError(f"Protocol error from Redis: {exc}"))
                return
            if reply is False:
                return
            if not self.pending:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            call = self.pending[0]
            call.replies.append(reply)
            if len(call.replies) == call.count:
                self.pending.popleft()
                if not call.future.done():  # a cancelled request's answer is just dropped
                    call.future.set_result(call.replies)

    def _expire(self) -> None:
        """The oldest call unanswered past its deadline fails the connection; calls are
        answered in order, so only the oldest needs a timer."""
        self.timer = None
        if not self.pending or self.broken is not None:
            return
        deadline = self.pending[0].deadline
        if self.loop.time() >= deadline:
            self.fail(RedisTimeoutError("Timeout reading from Redis"))
        else:
            self.timer = self.loop.call_at(deadline, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(
            RedisConnectionError(f"Connection to Redis lost: {exc or 'closed by the server'}")
        )

    def fail(self, error: RedisError) -> None:
        """Close the connection and fail every call still waiting on it."""
        if self.broken is None:
            self.broken = error
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
        self.outgoing.clear()
        while self.pending:
            call = self.pending.popleft()
            if not call.future.done():
                call.future.set_exception(error)
