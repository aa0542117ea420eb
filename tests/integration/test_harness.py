"""The harness starts real services: a broken harness must fail here, loudly."""

from __future__ import annotations

import boto3
import pytest
import redis

from tests.harness.services import MotoServer, RedisServer

pytestmark = pytest.mark.integration


def test_redis_server_is_real_and_aof_survives_restart(aof_redis: RedisServer) -> None:
    client = redis.Redis.from_url(aof_redis.url)
    client.set("vouch:test", "kept")
    client.close()
    aof_redis.restart()
    client = redis.Redis.from_url(aof_redis.url)
    assert client.get("vouch:test") == b"kept"
    assert client.info("persistence")["aof_enabled"] == 1
    client.close()


def test_moto_server_answers_sts(moto_server: MotoServer) -> None:
    sts = boto3.client(
        "sts",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert sts.get_caller_identity()["Account"] == "123456789012"
