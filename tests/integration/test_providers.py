"""The provider seam: a second credential provider plugs in with one class and one line.

The provider here is defined in the test and returns fixed credentials; everything in front
of it is the broker's own: token verification, the revocation check, the authorize step
(narrowing, org policy, duration clamp) and the cache with single flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from broker.authorize import CredentialGrant
from broker.providers import PROVIDERS
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import signed_in

pytestmark = pytest.mark.integration

HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


class FixedCredentials:
    def __init__(self, grant: CredentialGrant, serial: int) -> None:
        self.grant = grant
        self.serial = serial
        self.expiration = datetime.now(UTC) + timedelta(seconds=grant.duration_s)

    def process_document(self) -> dict[str, object]:
        return {
            "Version": 1,
            "Provider": "fixed",
            "Serial": self.serial,
            "Models": list(self.grant.models),
            "DurationSeconds": self.grant.duration_s,
            "Expiration": self.expiration.isoformat(),
        }


class FixedProvider:
    """Answers after 50 ms with credentials that say what they were issued for."""

    name = "fixed"
    min_duration_s = 60

    def __init__(self) -> None:
        self.grants: list[CredentialGrant] = []
        self.lock = threading.Lock()

    async def issue(self, grant: CredentialGrant) -> FixedCredentials:
        await asyncio.sleep(0.05)
        with self.lock:
            self.grants.append(grant)
            return FixedCredentials(grant, len(self.grants))

    def check(self, models: tuple[str, ...], expires_at: int) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def fixed(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[BrokerServer, FixedProvider]]:
    provider = FixedProvider()
    monkeypatch.setitem(PROVIDERS, "fixed", lambda *_: provider)
    # No AWS at all: the AWS provider is registered too, but nothing here calls it.
    server = BrokerServer(broker_settings(tmp_path, redis_url)).start()
    yield server, provider
    server.stop()


def test_a_second_provider_gets_the_same_authorize_step_and_cache(
    fixed: tuple[BrokerServer, FixedProvider], tmp_path: Path
) -> None:
    server, provider = fixed
    alice = signed_in(server, "alice@example.com", tmp_path / "alice.key.json")
    done = alice.delegate("researcher", [HAIKU, SONNET])
    token, dlg = done.token, done.delegation.id
    url = f"http://127.0.0.1:{server.port}/v1/credentials/fixed"
    headers = {"Authorization": f"Bearer {token}"}

    # Concurrent misses for one grant share one provider call; later calls hit the cache.
    def call() -> httpx.Response:
        return httpx.post(url, headers=headers, timeout=10)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: call(), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["Serial"] for a in answers} == {1}
    assert call().json()["Serial"] == 1
    [grant] = provider.grants
    assert grant.principal.id == dlg and grant.principal.agent == "researcher"
    assert grant.principal.email == "alice@example.com"
    assert grant.models == (HAIKU, SONNET)
    assert grant.duration_s == 60  # the provider's floor is the default

    # Narrowing is the authorize step's: a subset gets its own credentials, a widening never.
    narrowed = httpx.post(url, headers=headers, json={"models": [HAIKU]}, timeout=10)
    assert narrowed.json()["Models"] == [HAIKU] and narrowed.json()["Serial"] == 2
    wider = httpx.post(url, headers=headers, json={"models": ["us.claude-opus-4-5"]}, timeout=10)
    assert wider.status_code == 403
    assert wider.json()["type"] == "urn:vouch:problem:policy-denied"

    # The revocation check runs before the cache: a revoked delegation gets nothing.
    assert alice.revoke(dlg).revoked_at is not None
    refused = call()
    assert refused.status_code == 401
    assert refused.json()["type"] == "urn:vouch:problem:token-revoked"
    assert len(provider.grants) == 2
