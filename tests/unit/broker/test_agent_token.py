"""The agent token's one home: mint and verify round-trip, and claims of the wrong shape."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from broker.agent_token import Actor, AgentClaims, expectation, mint_agent_token, verify_agent_token
from broker.errors import TokenInvalid
from broker.keys import KeyRing, generate_key_dir, load_key_ring
from broker.tokens import AGENT_TYP, mint

pytestmark = pytest.mark.unit
ISS = "https://vouch.example.com"
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    generate_key_dir(tmp_path / "keys")
    return load_key_ring(tmp_path / "keys")


def minted(ring: KeyRing, **narrowing: int | None) -> tuple[str, AgentClaims]:
    return mint_agent_token(
        agent="researcher",
        actor=Actor("alice@example.com", "cid123", ("hwk", "uv")),
        dlg_id="dlg_abc",
        models=(HAIKU,),
        ttl_s=3600,
        max_sts_s=narrowing.get("max_sts_s"),
        rate=narrowing.get("rate"),
        issuer=ISS,
        now=int(time.time()),
        keys=ring,
    )


def test_mint_then_verify_gives_the_same_claims(ring: KeyRing) -> None:
    token, claims = minted(ring, rate=10)
    verified = verify_agent_token(token, expectation(ISS, 30), keys=ring, now=time.time())
    assert verified == claims
    assert (verified.agent, verified.person, verified.dlg) == (
        "researcher",
        "alice@example.com",
        "dlg_abc",
    )
    assert verified.sub == "agent.researcher.alice@example.com"
    assert verified.handles() == [
        "vouch:rev:dlg_abc",
        "vouch:nbf:agent:agent.researcher.alice@example.com",
        "vouch:nbf:user:alice@example.com",
        "vouch:nbf:cred:cid123",
    ]


def test_unset_narrowing_is_absent_from_the_token(ring: KeyRing) -> None:
    token, _ = minted(ring)
    payload = msgspec.json.decode(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert "max_sts_s" not in payload and "rate" not in payload
    assert payload["act"] == {"sub": "alice@example.com", "cid": "cid123", "amr": ["hwk", "uv"]}


def _signed(ring: KeyRing, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": ISS,
        "sub": "agent.researcher.alice@example.com",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j",
        "dlg": "dlg_abc",
        "models": [HAIKU],
        "act": {"sub": "alice@example.com", "cid": "cid123", "amr": ["hwk", "uv"]},
    }
    claims.update(changes)
    return mint(claims, typ=AGENT_TYP, keys=ring)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"act": {"sub": "alice@example.com", "amr": ["hwk"]}}, "agent token claims are malformed"),
        ({"act": "alice@example.com"}, "agent token claims are malformed"),
        ({"models": "all"}, "agent token claims are malformed"),
        ({"rate": "many"}, "agent token claims are malformed"),
        ({"sub": "agent.researcher.mallory@example.com"}, "does not name its approving person"),
        ({"sub": "user.alice@example.com"}, "does not name its approving person"),
    ],
)
def test_validly_signed_claims_of_the_wrong_shape_are_token_invalid(
    ring: KeyRing, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(TokenInvalid, match=message):
        verify_agent_token(
            _signed(ring, **changes), expectation(ISS, 30), keys=ring, now=time.time()
        )
