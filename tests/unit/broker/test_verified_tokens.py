"""The verified-token cache: keyed by exact text, bounded, ending with the token or its key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker.agent_token import Actor, expectation, mint_agent_token
from broker.dpop import normalize_htu
from broker.errors import TokenExpired, TokenInvalid
from broker.keys import KeyRing, generate_key_dir, load_key_ring
from broker.verified_tokens import VerifiedTokens

pytestmark = pytest.mark.unit
ISS = "https://vouch.example.com"


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    generate_key_dir(tmp_path / "keys")
    return load_key_ring(tmp_path / "keys")


def token(ring: KeyRing, dlg: str = "dlg_1", ttl_s: int = 3600) -> str:
    minted, _ = mint_agent_token(
        agent="bot",
        actor=Actor("alice@example.com", "cid1", ("hwk", "uv")),
        dlg_id=dlg,
        models=("m",),
        ttl_s=ttl_s,
        max_sts_s=None,
        rate=None,
        issuer=ISS,
        now=int(time.time()),
        keys=ring,
        jkt="A" * 43,
    )
    return minted


def test_a_repeat_is_served_from_the_cache_with_its_claims(ring: KeyRing) -> None:
    cache = VerifiedTokens(ring, expectation(ISS, 30), max_entries=10)
    text = token(ring)
    first = cache.verify(text, time.time())
    assert first.claims.cnf is not None and first.claims.cnf.jkt == "A" * 43
    assert cache.verify(text, time.time()) is first  # the same entry: nothing verified again
    assert len(cache) == 1


def test_the_cache_is_bounded_least_recently_used_first(ring: KeyRing) -> None:
    cache = VerifiedTokens(ring, expectation(ISS, 30), max_entries=2)
    a, b, c = (token(ring, f"dlg_{n}") for n in "abc")
    kept_a = cache.verify(a, time.time())
    cache.verify(b, time.time())
    cache.verify(a, time.time())  # a is now the most recent
    cache.verify(c, time.time())  # b goes
    assert len(cache) == 2
    assert cache.verify(a, time.time()) is kept_a


def test_an_entry_ends_with_its_token(ring: KeyRing) -> None:
    cache = VerifiedTokens(ring, expectation(ISS, 30), max_entries=10)
    text = token(ring, ttl_s=60)
    cache.verify(text, time.time())
    with pytest.raises(TokenExpired, match=r"^token expired$"):
        cache.verify(text, time.time() + 60 + 31)
    assert len(cache) == 0


def test_an_entry_ends_when_its_key_leaves_the_ring(ring: KeyRing) -> None:
    cache = VerifiedTokens(ring, expectation(ISS, 30), max_entries=10)
    text = token(ring)
    cache.verify(text, time.time())
    ring.update(ring.signer, {}, frozenset())  # a reload without the key
    assert len(cache) == 1
    with pytest.raises(TokenInvalid, match=r"^token signed by an unknown key$"):
        cache.verify(text, time.time())
    assert len(cache) == 0


def test_htu_is_compared_as_rfc_9449_normalizes_it() -> None:
    assert normalize_htu("HTTPS://Vouch.Example.com:443/v1/credentials/aws?x=1#f") == (
        "https://vouch.example.com/v1/credentials/aws"
    )
    assert normalize_htu("http://localhost:8080") == "http://localhost:8080/"
    assert normalize_htu("http://[::1]:80/a%2fb") == "http://[::1]/a%2Fb"
    assert normalize_htu("ftp://x/y") is None
    assert normalize_htu("https://user@x/y") is None
