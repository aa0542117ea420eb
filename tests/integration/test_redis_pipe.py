"""The revocation check's pipelined connection (broker/redis_pipe.py) against a real
redis-server: the same replies as redis-py, commands answered in order, and failures that
end in a 503 (invariant 1) rather than a late or shifted answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import redis
import uvloop
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError, TimeoutError

from broker.errors import StoreUnavailable, TokenRevoked
from broker.redis_pipe import RedisPipe, pipe_for
from broker.revocation import Revocations, delegation_key
from broker.store import connect
from tests.harness.services import RedisServer

pytestmark = pytest.mark.integration
T = TypeVar("T")
SCRIPT = "return {redis.call('GET', KEYS[1]), tonumber(ARGV[1]) + 1}"


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await main()

    return uvloop.run(wrapped())


def pipe(url: str, timeout_s: float = 1.0) -> RedisPipe:
    made = pipe_for(connect(url, timeout_s=timeout_s))
    assert made is not None
    return made


def test_replies_are_redis_pys(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)
    sync.delete("pipe:a", "pipe:b", "pipe:n")
    sync.set("pipe:a", b"\x00bytes\xff")
    sha = sync.script_load(SCRIPT)
    sync.script_flush()  # the pipe must send the script whole once (NOSCRIPT)

    async def main() -> list[object]:
        link = pipe(redis_url)
        try:
            return [
                await link.execute(("MGET", "pipe:a", "pipe:b")),
                await link.execute(
                    ("INCR", "pipe:n"),
                    ("EXPIRE", "pipe:n", 3700),
                    ("SET", "pipe:b", b"1", "NX", "EX", 60),
                    ("SET", "pipe:b", b"1", "NX", "EX", 60),
                ),
                await link.eval(SCRIPT, sha, ["pipe:a"], [41]),
                await link.eval(SCRIPT, sha, ["pipe:missing"], [1]),
            ]
        finally:
            await link.close()

    assert run(main) == [
        [[b"\x00bytes\xff", None]],
        [1, 1, b"OK", None],
        [b"\x00bytes\xff", 42],
        [None, 2],
    ]
    assert sync.ttl("pipe:b") > 0 and sync.ttl("pipe:n") > 3600


def test_a_refused_command_raises_and_the_connection_stays_in_step(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).lpush("pipe:list", b"x")

    async def main() -> None:
        link = pipe(redis_url)
        try:
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await link.execute(("MGET", "pipe:list"), ("INCR", "pipe:list"))
            assert await link.execute(("LLEN", "pipe:list")) == [1]
        finally:
            await link.close()

    run(main)


def test_concurrent_and_cancelled_calls_each_get_their_own_reply(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)
    for i in range(200):
        sync.set(f"pipe:k{i}", str(i))

    async def main() -> None:
        link = pipe(redis_url)
        try:
            # Some calls are cancelled after their command left: their replies still arrive
            # and must be dropped, not handed to the next caller.
            doomed = [asyncio.create_task(link.execute(("GET", f"pipe:k{i}"))) for i in range(50)]
            await asyncio.sleep(0)
            for task in doomed[::2]:
                task.cancel()
            answers = await asyncio.gather(
                *(
                    link.execute(("GET", f"pipe:k{i}"), ("GET", f"pipe:k{i + 1}"))
                    for i in range(150)
                )
            )
            assert answers == [[str(i).encode(), str(i + 1).encode()] for i in range(150)]
            for i, task in enumerate(doomed):
                if i % 2:
                    assert await task == [str(i).encode()]
                else:
                    assert task.cancelled()
        finally:
            await link.close()

    run(main)


def test_a_sleeping_redis_fails_every_waiting_call_within_the_timeout_then_recovers(
    aof_redis: RedisServer,
) -> None:
    timeout_s = 0.25
    control = redis.Redis.from_url(aof_redis.url)
    control.set(delegation_key("dlg_live"), b"1")

    async def main() -> tuple[list[BaseException | list[object]], float, list[object]]:
        link = pipe(aof_redis.url, timeout_s)
        try:
            assert await link.execute(("PING",)) == [b"PONG"]
            loop = asyncio.get_running_loop()
            sleeper = loop.run_in_executor(None, control.execute_command, "DEBUG", "SLEEP", "1.5")
            await asyncio.sleep(0.2)
            started = time.monotonic()
            answers = await asyncio.gather(
                *(link.execute(("MGET", delegation_key("dlg_live"))) for _ in range(32)),
                return_exceptions=True,
            )
            slowest = time.monotonic() - started
            await sleeper
            return answers, slowest, await link.execute(("MGET", delegation_key("dlg_live")))
        finally:
            await link.close()

    answers, slowest, after = run(main)
    # The first attempt times out, the retry connects and times out too: never 1.5 s.
    assert {type(a) for a in answers} == {TimeoutError}
    assert slowest < 3 * timeout_s + 0.5, slowest
    assert after == [[b"1"]]


def test_a_killed_redis_fails_calls_at_once_and_a_restarted_one_is_used_again(
    aof_redis: RedisServer,
) -> None:
    async def main() -> None:
        link = pipe(aof_redis.url)
        revocations = Revocations(connect(aof_redis.url, timeout_s=1.0), max_token_lifetime_s=60)
        try:
            await link.execute(("SET", delegation_key("dlg_gone"), b"1"))
            aof_redis.stop(kill=True)
            started = time.monotonic()
            with pytest.raises(ConnectionError):
                await link.execute(("GET", delegation_key("dlg_gone")))
            with pytest.raises(StoreUnavailable):  # fail closed: never "not revoked"
                await revocations.check([delegation_key("dlg_gone")], issued_at=0)
            assert time.monotonic() - started < 1.0
            aof_redis.start()  # same port, same AOF: the revocation is still there
            assert await link.execute(("GET", delegation_key("dlg_gone"))) == [b"1"]
            with pytest.raises(TokenRevoked):
                await revocations.check([delegation_key("dlg_gone")], issued_at=0)
        finally:
            await link.close()
            await revocations.close()
            await revocations.redis.aclose()

    run(main)


def test_password_and_database_from_the_url(aof_redis: RedisServer) -> None:
    admin = redis.Redis.from_url(aof_redis.url)
    admin.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{aof_redis.port}/3"
    redis.Redis.from_url(url).set("pipe:in-db-3", b"here")

    async def main() -> None:
        link = pipe(url)
        wrong = pipe(f"redis://:wrong@127.0.0.1:{aof_redis.port}/3")
        try:
            assert await link.execute(("GET", "pipe:in-db-3")) == [b"here"]
            with pytest.raises(AuthenticationError):
                await wrong.execute(("GET", "pipe:in-db-3"))
        finally:
            await link.close()
            await wrong.close()

    run(main)


@pytest.mark.parametrize(
    "url",
    [
        "rediss://127.0.0.1:6379/0",  # TLS: redis-py's
        "redis://127.0.0.1:6379/0?protocol=3",  # an option the pipe does not speak
        "redis+cluster://127.0.0.1:7000",
        "redis+sentinel://127.0.0.1:26379/main",
    ],
)
def test_only_one_plain_redis_gets_a_pipe(url: str) -> None:
    assert pipe_for(connect(url, timeout_s=1.0)) is None


def test_plain_and_unix_urls_get_a_pipe(tmp_path: Path) -> None:
    tcp = pipe_for(connect("redis://:pw@10.0.0.1:6380/2", timeout_s=0.5))
    unix = pipe_for(connect(f"unix://{tmp_path}/redis.sock?db=1", timeout_s=0.5))
    assert tcp is not None and unix is not None
    assert (tcp.address.host, tcp.address.port, tcp.address.db) == ("10.0.0.1", 6380, 2)
    assert (tcp.address.password, tcp.timeout_s) == ("pw", 0.5)
    assert (unix.address.path, unix.address.db, unix.address.host) == (
        f"{tmp_path}/redis.sock",
        1,
        "",
    )
