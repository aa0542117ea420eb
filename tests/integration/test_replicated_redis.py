"""Redis Cluster and Sentinel: the broker keeps working through a failover and no
acknowledged revocation is lost (a revocation waits for every replica before the API
answers); a topology that can lose acknowledged revocations is refused. Failovers under
load are in test_failover_faults.py."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from vouch_delegate import BrokerUnavailable, RevocationUnconfirmed

from broker.revocation import delegation_key
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import person_at, signed_in
from tests.harness.processes import BrokerProcess
from tests.harness.services import free_port, wait_for
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


def test_sentinel_revocation_waits_for_every_replica_the_sentinels_list(
    tmp_path: Path, sts_gate: StsGate
) -> None:
    """With a replica down, a revocation is written on the primary but not acknowledged:
    the answer says it may not be recorded. Once the replica is back, it is."""
    topology = LocalSentinel(tmp_path / "sentinel", replicas=2).start()
    settings = broker_settings(
        tmp_path, topology.url, aws={"endpoint_url": sts_gate.url}, revocation_wait_ms=1000
    )
    server = BrokerServer(settings).start()
    try:
        wire_aws(server, sts_gate)
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["redis"] == {
            "mode": "sentinel",
            "replicas": 2,
            "replicas_down": 0,
            "unsafe": [],
        }
        alice = signed_in(server, "alice@example.com", tmp_path / "alice.json")
        first, second = (alice.delegate(n, ["us.claude-haiku-4-5"]) for n in ("a", "b"))
        assert alice.revoke(first.delegation.id).revoked_at is not None
        topology.replicas[1].kill()
        with pytest.raises(RevocationUnconfirmed) as refused:
            alice.revoke(second.delegation.id)
        assert refused.value.status == 503
        assert refused.value.detail == (
            "not confirmed: written on the primary but acknowledged by 1 of 2 replicas in 1000"
            " ms, so a failover could lose it. It may not have been recorded: send the same"
            " request again until it is confirmed (repeating it is safe)"
        )
        wait_for(
            lambda: httpx.get(f"{server.url}/readyz").json()["redis"]["replicas_down"] == 1,
            timeout=15,
            what="readyz to count the replica down",
        )
        topology.replicas[1].start()
        wait_for(topology.healed, timeout=30, what="replica back")
        assert alice.revoke(second.delegation.id).revoked_at is not None  # the same request
        for done in (first, second):
            assert exchange(server, done.token) == (401, "token-revoked")
    finally:
        server.stop()
        topology.stop()


def serve(settings_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`vouch-broker serve` as it starts in production, stopped by the test if it runs."""
    port = str(free_port())
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "serve", "--port", port],
        env=settings_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("kind", ["sentinel-without-aof", "cluster-replicas-0"])
def test_a_topology_that_can_lose_acknowledged_revocations_is_refused_unless_opted_out(
    tmp_path: Path, kind: str
) -> None:
    topology: LocalSentinel | LocalCluster
    if kind == "sentinel-without-aof":
        topology = LocalSentinel(tmp_path / "sentinel", durable=False).start()
        expected = "runs without the append-only file (appendonly no): restarted, it comes"
    else:
        topology = LocalCluster(tmp_path / "cluster").start()
        expected = (
            "VOUCH_REVOCATION_REPLICAS=0 is below the 1 replicas of a cluster primary: a"
            " promoted replica would confirm revocations alone"
        )
    try:
        settings = broker_settings(tmp_path, topology.url)
        env = BrokerProcess(settings, tmp_path / "unused.log").env()
        refused = serve(env)
        assert refused.returncode == 6, refused.stderr
        assert refused.stderr.startswith(
            "vouch-broker serve: the Redis topology can lose acknowledged revocations: "
        )
        assert expected in refused.stderr
        assert "VOUCH_REDIS_ALLOW_UNSAFE=true" in refused.stderr
        # /readyz of a broker started some other way says the same, and is not ready.
        server = BrokerServer(settings).start()
        try:
            answer = httpx.get(f"{server.url}/readyz")
            assert answer.status_code == 503
            assert expected in answer.json()["detail"]
        finally:
            server.stop()
        # Opted out: it runs, and /readyz shows what is unsafe.
        allowed = BrokerProcess(
            settings, tmp_path / "allowed.log", extra_env={"VOUCH_REDIS_ALLOW_UNSAFE": "true"}
        ).start()
        try:
            ready = httpx.get(f"{allowed.base_url}/readyz")
            assert ready.status_code == 200
            assert any(expected in problem for problem in ready.json()["redis"]["unsafe"])
        finally:
            allowed.stop()
    finally:
        topology.stop()
