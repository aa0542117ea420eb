"""Fail closed (invariant 1) and durable revocation (invariant 7) with a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import signed_in
from tests.harness.services import MotoServer, RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def durable(
    tmp_path: Path, aof_redis: RedisServer, moto_server: MotoServer
) -> Iterator[BrokerServer]:
    settings = broker_settings(tmp_path, aof_redis.url, aws={"endpoint_url": moto_server.url})
    server = BrokerServer(settings).start()
    yield server
    server.stop()


def slug(answer: httpx.Response) -> str:
    return str(answer.json()["type"]).rsplit(":", 1)[1]


def test_redis_down_refuses_everything_then_recovers(
    durable: BrokerServer, aof_redis: RedisServer, tmp_path: Path
) -> None:
    alice = signed_in(durable, "alice@example.com", tmp_path / "alice.json")
    agent_token = alice.delegate("researcher", ["us.claude-haiku-4-5"]).token
    aof_redis.stop(kill=True)
    with durable.client(alice.session) as person, durable.client(agent_token) as agent:
        answers = {
            "login": alice.post("/v1/login/begin", {"email": alice.email}),
            "session": person.get("/v1/delegations"),
            "exchange": agent.post("/v1/credentials/aws"),
            "own credentials": person.post("/v1/credentials/aws/self"),
            "readyz": person.get("/readyz"),
        }
        for name, answer in answers.items():
            assert (answer.status_code, slug(answer)) == (503, "store-unavailable"), name
            assert answer.headers["retry-after"] == "1"
        assert "AccessKeyId" not in answers["exchange"].text
        assert "AccessKeyId" not in answers["own credentials"].text
        aof_redis.start()
        assert person.get("/readyz").status_code == 200
        assert agent.post("/v1/credentials/aws").status_code == 200
        assert person.post("/v1/credentials/aws/self").status_code == 200


def test_revocation_survives_redis_restart(
    durable: BrokerServer, aof_redis: RedisServer, tmp_path: Path
) -> None:
    alice = signed_in(durable, "alice@example.com", tmp_path / "alice.json")
    done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    assert alice.revoke(done.delegation.id).revoked_at is not None
    aof_redis.restart()
    with durable.client(done.token) as agent:
        answer = agent.post("/v1/credentials/aws")
    assert (answer.status_code, slug(answer)) == (401, "token-revoked")
