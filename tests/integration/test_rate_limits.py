"""Rate limits on the guessable doors, atomic in Redis and shared by every replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.broker import BrokerServer, broker_settings

pytestmark = pytest.mark.integration


def well_inside_a_minute(margin_s: float = 10) -> None:
    """Limits count per clock minute: start a test's burst where no minute ends within it."""
    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.05)


@pytest.fixture
def strict(tmp_path: Path, redis_url: str) -> Iterator[BrokerServer]:
    settings = broker_settings(tmp_path, redis_url, rate_login_per_min=3, rate_requests_per_min=2)
    server = BrokerServer(settings).start()
    well_inside_a_minute()
    yield server
    server.stop()


def test_login_begin_is_limited_per_address_and_email(strict: BrokerServer) -> None:
    base = f"http://127.0.0.1:{strict.port}"
    codes = [
        httpx.post(f"{base}/v1/login/begin", json={"email": "a@example.com"}).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    limited = httpx.post(f"{base}/v1/login/begin", json={"email": "b@example.com"})
    assert limited.status_code == 429  # same address, another email: still this address's budget
    assert limited.json()["type"] == "urn:vouch:problem:rate-limited"
    assert 0 < int(limited.headers["retry-after"]) <= 60


def test_agent_requests_are_limited(strict: BrokerServer) -> None:
    base = f"http://127.0.0.1:{strict.port}"
    body = {"email": "a@example.com", "agent": "x", "models": ["us.claude-haiku-4-5"]}
    codes = [httpx.post(f"{base}/v1/delegation-requests", json=body).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
