"""Integration fixtures: a broker on real HTTP over a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker import aws_setup
from broker.invites import Invites
from broker.services import load_policy
from broker.settings import Settings
from broker.store import connect
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human
from tests.harness.sts_gate import StsGate


def make_invite(settings: Settings, email: str) -> str:
    """What `vouch-broker invite EMAIL` does on the server host."""

    async def create() -> str:
        redis = connect(settings.redis_url, timeout_s=2)
        try:
            return await Invites(redis, ttl_s=settings.invite_ttl_s).create(email)
        finally:
            await redis.aclose()

    return asyncio.run(create())


def wire_aws(server: BrokerServer, gate: StsGate) -> None:
    """Create the provider and role with the broker's own `aws-setup` code, in moto."""
    catalog, org = load_policy(server.settings)
    aws_setup.apply(aws_setup.plan(server.settings, org, catalog), gate.iam)


@pytest.fixture
def broker(tmp_path: Path, redis_url: str, sts_gate: StsGate) -> Iterator[BrokerServer]:
    """A broker whose STS is the gate (AWS's checks in front of moto), AWS wired by aws-setup."""
    settings = broker_settings(tmp_path, redis_url, aws_endpoint_url=sts_gate.url)
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


@pytest.fixture
def human_factory(broker: BrokerServer, tmp_path: Path) -> Callable[..., Human]:
    """Make a person with a fresh software key; `enrolled=True` also enrolls and logs in."""

    def make(email: str = "alice@example.com", *, enrolled: bool = True) -> Human:
        human = Human(
            f"http://127.0.0.1:{broker.port}", broker.url, email, tmp_path / f"{email}.key.json"
        )
        if enrolled:
            human.enroll(make_invite(broker.settings, email))
            human.login()
        return human

    return make
