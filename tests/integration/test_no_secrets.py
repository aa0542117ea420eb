"""No secret in logs or audit (invariant 8): tokens, keys and codes are never written."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from vouch_delegate import AgentKey

from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human, person_at, signed_in
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import make_invite, wire_aws

pytestmark = pytest.mark.integration
JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")


def test_a_whole_flow_writes_no_secret(
    broker: BrokerServer,
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    code = make_invite(broker.settings, "alice@example.com")
    alice = person_at(broker, "alice@example.com", broker_key(broker))
    alice.enroll(code)
    session = alice.login()
    done = alice.delegate("researcher", ["us.claude-haiku-4-5"], purpose="token=abc secret")
    with broker.client(done.token) as agent:
        doc = agent.post("/v1/credentials/aws").json()
        agent.post("/v1/credentials/aws", json={"models": ["us.claude-opus-4-5"]})  # refused
    mine = alice.broker.own_credentials_aws()  # a person's own: the session as bearer
    key = AgentKey.generate()  # a bound token: its proof, accepted then replayed, is a secret
    bound = alice.delegate("bound", ["us.claude-haiku-4-5"], bind_key=key.thumbprint).token
    assert bound is not None
    proof = key.proof("POST", broker.url + "/v1/credentials/aws", bound)
    with broker.client() as agent:
        for status in (200, 401):
            sent = agent.post(
                "/v1/credentials/aws", headers={"Authorization": f"DPoP {bound}", "DPoP": proof}
            )
            assert sent.status_code == status
    sts_gate.throttle_next(10)
    with broker.client(alice.delegate("writer", ["us.claude-haiku-4-5"]).token) as agent:
        assert agent.post("/v1/credentials/aws").status_code == 503
    secrets = [code, session, done.token, doc["SecretAccessKey"], doc["SessionToken"]]
    secrets += [bound, proof]
    secrets += [mine.secret_access_key, mine.session_token]
    audit = redis.Redis.from_url(broker.settings.redis_url).xrange("vouch:audit")
    written = caplog.text + "\n".join(str(fields) for _, fields in audit)
    assert len(audit) >= 4  # enrolled, login, delegated x2 at least: the check looked at something
    events = {fields[b"event"] for _, fields in audit}
    assert {b"exchange_issued", b"exchange_refused"} <= events  # exchanges are in it too
    assert "POST /v1/credentials/aws 200" in caplog.text  # and so is the access log
    for secret in secrets:
        assert secret not in written
    assert JWT.search(written) is None  # not even the STS assertion, which we never see here


def broker_key(broker: BrokerServer) -> Path:
    return Path(broker.settings.signing_keys or "").parent / "alice.key.json"


def test_counted_exchanges_and_refusals_write_no_secret(
    tmp_path: Path, redis_url: str, sts_gate: StsGate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = broker_settings(
        tmp_path, redis_url, aws={"endpoint_url": sts_gate.url}, audit_exchange_interval_s=3600
    )
    server = BrokerServer(settings).start()
    try:
        wire_aws(server, sts_gate)
        alice = signed_in(server, "alice@example.com", tmp_path / "alice.key.json")
        done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
        with server.client(done.token) as agent:
            docs = [agent.post("/v1/credentials/aws").json() for _ in range(3)]
            alice.revoke(done.delegation.id)
            for _ in range(3):
                assert agent.post("/v1/credentials/aws").status_code == 401
        with server.client(done.token[:-3] + "abc") as forger:
            for _ in range(3):
                assert forger.post("/v1/credentials/aws").status_code == 401
    finally:
        server.stop()  # what was counted is written now
    audit = redis.Redis.from_url(redis_url).xrange("vouch:audit")
    assert sum(b"count" in fields for _, fields in audit) == 3  # hits, revoked, forged
    written = caplog.text + "\n".join(str(fields) for _, fields in audit)
    secrets = [done.token, str(alice.session), docs[0]["SecretAccessKey"], docs[0]["SessionToken"]]
    for secret in secrets:
        assert secret not in written
    assert JWT.search(written) is None
