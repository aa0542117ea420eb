"""Redis Cluster and Sentinel: the broker keeps working through a failover and no
acknowledged revocation is lost (revocations wait for one replica before the API answers)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vouch_delegate import BrokerUnavailable

from broker.revocation import delegation_key
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import person_at, signed_in
from tests.harness.sts_gate import StsGate
from tests.harness.topology import LocalCluster, LocalSentinel
from tests.integration.conftest import make_invite, wire_aws

pytestmark = pytest.mark.integration


def start_broker(tmp_path: Path, url: str, gate: StsGate) -> BrokerServer:
    settings = broker_settings(
        tmp_path,
        url,
        aws={"endpoint_url": gate.url},
        revocation_replicas=1,
        revocation_wait_ms=2000,
        redis_timeout_s=1.0,
    )
    server = BrokerServer(settings).start()
    wire_aws(server, gate)
    return server


def exchange(server: BrokerServer, token: str) -> tuple[int, str]:
    with server.client(token) as agent:
        answer = agent.post("/v1/credentials/aws")
    return answer.status_code, str(answer.json().get("type", "")).rsplit(":", 1)[-1]


def eventually_ok(server: BrokerServer, token: str, tries: int = 40) -> None:
    """After a failover the first requests may be refused (503) until clients reconnect."""
    for _ in range(tries):
        status, _ = exchange(server, token)
        if status == 200:
            return
        assert status == 503  # refused, never served wrongly
        time.sleep(0.25)
    raise AssertionError("broker did not recover after failover")


def run_scenario(server: BrokerServer, tmp_path: Path, fail_over: Callable[[str], None]) -> None:
    alice = signed_in(server, "alice@example.com", tmp_path / "alice.json")
    revoked = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    kept = alice.delegate("writer", ["us.claude-haiku-4-5"])
    assert exchange(server, revoked.token)[0] == 200
    dlg = revoked.delegation.id
    assert alice.revoke(dlg).revoked_at is not None  # acknowledged: a replica holds it
    fail_over(delegation_key(dlg))
    eventually_ok(server, kept.token)
    assert exchange(server, revoked.token) == (401, "token-revoked")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    topology = LocalCluster(tmp_path / "cluster").start()
    yield topology
    topology.stop()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[LocalSentinel]:
    topology = LocalSentinel(tmp_path / "sentinel").start()
    yield topology
    topology.stop()


def test_cluster_failover_keeps_acknowledged_revocations(
    tmp_path: Path, cluster: LocalCluster, sts_gate: StsGate
) -> None:
    server = start_broker(tmp_path, cluster.url, sts_gate)
    try:
        run_scenario(server, tmp_path, cluster.fail_over)
    finally:
        server.stop()


def test_sentinel_failover_keeps_acknowledged_revocations(
    tmp_path: Path, sentinel: LocalSentinel, sts_gate: StsGate
) -> None:
    server = start_broker(tmp_path, sentinel.url, sts_gate)
    try:
        run_scenario(server, tmp_path, lambda _key: sentinel.fail_over())
    finally:
        server.stop()


def test_revocation_without_enough_replicas_is_not_acknowledged_but_enforced(
    tmp_path: Path, redis_url: str, sts_gate: StsGate
) -> None:
    settings = broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": sts_gate.url},
        revocation_replicas=1,
        revocation_wait_ms=100,
    )
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    try:
        alice = person_at(server, "alice@example.com", tmp_path / "alice.json")
        alice.enroll(make_invite(settings, alice.email))
        alice.login()
        done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
        with pytest.raises(BrokerUnavailable) as refused:
            alice.revoke(done.delegation.id)
        assert refused.value.status == 503
        assert "acknowledged by 0 of 1 replicas" in refused.value.detail
        assert exchange(server, done.token) == (401, "token-revoked")
    finally:
        server.stop()
