"""Shared fixtures: real redis-server and moto server processes, one set per xdist worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.harness.services import MotoServer, RedisServer
from tests.harness.sts_gate import StsGate

# The broker looks for AWS credentials of its own (to cut revoked sessions in AWS). Tests
# decide that themselves: none from the developer's environment or files, and no instance
# metadata lookups (they would wait on a network that is not there).
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_name, None)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (no persistence; tests flush between uses)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the shared redis-server."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with AOF persistence, for restart and outage tests."""
    server = RedisServer(tmp_path / "redis-aof", aof=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto server as a separate process (the local AWS emulator)."""
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sts_gate_server(moto_server: MotoServer) -> Iterator[StsGate]:
    """The local STS: AWS's AssumeRoleWithWebIdentity checks in front of moto."""
    with StsGate(moto_server) as gate:
        yield gate


@pytest.fixture
def sts_gate(sts_gate_server: StsGate) -> StsGate:
    """The STS gate with records, call counter, faults and JWKS cache reset for this test."""
    sts_gate_server.reset()
    return sts_gate_server
