"""Delegation with a fresh tap over the exact grant, then the exchange for AWS credentials."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import jwt
import pytest

from broker.grant import DOMAIN
from tests.harness.broker import BrokerServer
from tests.harness.people import Human

pytestmark = pytest.mark.integration

HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_challenge_commits_to_the_canonical_grant(human_factory: Callable[..., Human]) -> None:
    alice = human_factory()
    begin = alice.post(
        "/v1/delegations/begin",
        {"agent": "researcher", "models": ["us.claude-haiku-4-5"], "ttl_s": 3600},
        alice.session,
    )
    assert begin.status_code == 200, begin.text
    proposal = begin.json()
    assert proposal["grant"]["models"] == [HAIKU]
    challenge = jwt.utils.base64url_decode(proposal["options"]["publicKey"]["challenge"])
    digest = hashlib.sha256(DOMAIN + proposal["grant_canonical"].encode()).digest()
    assert challenge[16:] == digest


def test_delegate_then_exchange_returns_credential_process_document(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    done = alice.delegate("researcher", ["us.claude-haiku-4-5", "us.claude-sonnet-4-5"])
    token = done.token
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["typ"] == "vouch-agent+jwt"
    assert claims["sub"] == "agent.researcher.alice@example.com"
    assert claims["models"] == [HAIKU, SONNET]
    assert claims["act"]["sub"] == "alice@example.com"
    with broker.client(token) as http:
        answer = http.post("/v1/credentials/aws")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["Version"] == 1
    assert set(doc) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}


def test_revoked_delegation_is_refused_on_next_exchange(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    with broker.client(done.token) as agent:
        assert agent.post("/v1/credentials/aws").status_code == 200
        revoked = alice.revoke(done.delegation.id)
        assert (revoked.id, revoked.revoked_by) == (done.delegation.id, alice.email)
        assert revoked.revoked_at is not None
        refused = agent.post("/v1/credentials/aws")
    assert refused.status_code == 401
    assert refused.json()["type"] == "urn:vouch:problem:token-revoked"
