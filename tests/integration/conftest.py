"""Integration fixtures: a broker on real HTTP over a real redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from broker import aws_setup
from broker.services import load_policy
from tests.harness.broker import BrokerServer, broker_settings, make_invite
from tests.harness.people import Human, person_at
from tests.harness.sts_gate import StsGate

__all__ = ["make_invite", "wire_aws"]


def wire_aws(server: BrokerServer, gate: StsGate) -> None:
    """Create the provider and role with the broker's own `aws-setup` code, in moto."""
    catalog, org = load_policy(server.settings)
    aws_setup.apply(aws_setup.plan(server.settings, org, catalog), gate.iam)


@pytest.fixture
def broker(tmp_path: Path, redis_url: str, sts_gate: StsGate) -> Iterator[BrokerServer]:
    """A broker whose STS is the gate (AWS's checks in front of moto), AWS wired by aws-setup."""
    settings = broker_settings(tmp_path, redis_url, aws={"endpoint_url": sts_gate.url})
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


@pytest.fixture
def human_factory(broker: BrokerServer, tmp_path: Path) -> Callable[..., Human]:
    """Make a person with a fresh software key; `enrolled=True` also enrolls and logs in."""

    def make(email: str = "alice@example.com", *, enrolled: bool = True) -> Human:
        human = person_at(broker, email, tmp_path / f"{email}.key.json")
        if enrolled:
            human.enroll(make_invite(broker.settings, email))
            human.login()
        return human

    return make


@pytest.fixture
def http(broker: BrokerServer) -> Iterator[httpx.Client]:
    """Raw HTTP to the broker (attack tests send what no client would)."""
    with broker.client() as client:
        yield client
