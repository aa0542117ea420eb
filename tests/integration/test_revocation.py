"""Revocation by every handle, enforced on the next request on every replica (invariant 7)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.harness.processes import BrokerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def replica(broker: BrokerServer, tmp_path: Path) -> Iterator[BrokerProcess]:
    """A second broker, a separate process sharing Redis and keys with `broker`."""
    process = BrokerProcess(broker.settings, tmp_path / "replica.log").start()
    yield process
    process.stop()


def exchange_status(base_url: str, token: str) -> tuple[int, str]:
    answer = httpx.post(
        f"{base_url}/v1/credentials/aws", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return answer.status_code, str(answer.json().get("type", "")).rsplit(":", 1)[-1]


def audit_events(broker: BrokerServer) -> list[dict[bytes, bytes]]:
    client = redis.Redis.from_url(broker.settings.redis_url)
    return [fields for _, fields in client.xrange("vouch:audit")]


@pytest.mark.parametrize("handle", ["delegation", "agent", "user", "credential"])
def test_admin_revocation_by_each_handle_is_enforced_on_every_replica(
    handle: str,
    broker: BrokerServer,
    replica: BrokerProcess,
    human_factory: Callable[..., Human],
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory("alice@example.com")
    done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    token, record = done.token, done.delegation
    local = f"http://127.0.0.1:{broker.port}"
    assert exchange_status(local, token)[0] == 200
    assert exchange_status(replica.base_url, token)[0] == 200  # the replica caches too
    value = {
        "delegation": record.id,
        "agent": record.sub,
        "user": alice.email,
        "credential": record.cid,
    }[handle]
    answer = admin.post("/v1/admin/revocations", {handle: value, "reason": "test"}, admin.session)
    assert answer.status_code == 201, answer.text
    assert exchange_status(local, token) == (401, "token-revoked")
    assert exchange_status(replica.base_url, token) == (401, "token-revoked")
    refused = httpx.post(
        f"{local}/v1/credentials/aws", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert refused["handle"] == handle
    assert refused["detail"] == f"token revoked: its {handle} was revoked"
    revoked = [e for e in audit_events(broker) if e[b"event"] == b"revoked"]
    assert revoked[-1][b"handle"] == handle.encode()
    assert revoked[-1][b"subject"] == value.encode()
    assert revoked[-1][b"actor"] == b"admin@example.com"
    if handle in {"user", "credential"}:  # the person's session dies with them
        with broker.client(alice.session) as http:
            assert http.get("/v1/delegations").status_code == 401


def test_non_admin_cannot_revoke_invite_or_reinstate(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory("alice@example.com")
    for path, body in (
        ("/v1/admin/revocations", {"user": "bob@example.com"}),
        ("/v1/admin/invites/begin", {"email": "bob@example.com"}),
        ("/v1/admin/reinstatements/begin", {"email": "bob@example.com"}),
    ):
        answer = alice.post(path, body, alice.session)
        assert answer.status_code == 403
        assert answer.json()["type"] == "urn:vouch:problem:permission-denied"


def test_person_cannot_revoke_someone_elses_delegation(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory("alice@example.com")
    bob = human_factory("bob@example.com")
    done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    answer = bob.http.delete(
        f"/v1/delegations/{done.delegation.id}",
        headers={"Authorization": f"Bearer {bob.session}"},
    )
    assert answer.status_code == 404
    assert exchange_status(f"http://127.0.0.1:{broker.port}", done.token)[0] == 200


def test_revocation_needs_exactly_one_handle(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    for body in ({}, {"user": "a@example.com", "agent": "agent.x.a@example.com"}):
        answer = admin.post("/v1/admin/revocations", body, admin.session)
        assert answer.status_code == 400
        assert "exactly one" in answer.json()["detail"]
