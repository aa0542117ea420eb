"""The fast verification path only ever accepts what PyJWT accepts, with the same claims."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.errors import TokenInvalid
from broker.keys import KeyRing, generate_key_dir, load_key_ring
from broker.tokens import AGENT_TYP, Expectation, _verify_fast, _verify_pyjwt, mint, verify

pytestmark = pytest.mark.unit
ISS = "https://vouch.example.com"
EXPECT = Expectation(typ=AGENT_TYP, issuer=ISS, audience=ISS)


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    directory: Path = tmp_path_factory.mktemp("keys") / "k"
    generate_key_dir(directory)
    return load_key_ring(directory)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_for(ring: KeyRing, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": ISS,
        "sub": "agent.a.b@example.com",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "dlg": "dlg_x",
        "models": ["m"],
    }
    claims.update(changes)
    return mint({k: v for k, v in claims.items() if v is not None}, typ=AGENT_TYP, keys=ring)


def pyjwt_answer(token: str, ring: KeyRing) -> dict[str, Any] | None:
    try:
        return _verify_pyjwt(token, EXPECT, ring)
    except TokenInvalid:
        return None


def mutate(token: str, part: int, position: int, byte: int) -> str:
    pieces = token.split(".")
    raw = bytearray(pieces[part].encode())
    if raw:
        raw[position % len(raw)] = byte
    pieces[part] = raw.decode("latin-1")
    return ".".join(pieces)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(part=st.integers(0, 2), position=st.integers(0, 400), byte=st.integers(32, 126))
def test_fast_path_never_accepts_what_pyjwt_refuses(
    ring: KeyRing, part: int, position: int, byte: int
) -> None:
    token = mutate(token_for(ring), part, position, byte)
    fast = _verify_fast(token, EXPECT, ring)
    if fast is not None:
        assert fast == pyjwt_answer(token, ring)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"aud": "sts.amazonaws.com"},
        {"iss": "https://evil"},
        {"aud": [ISS, "x"]},
        {"jti": None},
        {"sub": None},
        {"iat": "1"},
        {"aud": [ISS]},
    ],
)
def test_fast_path_agrees_with_pyjwt_on_claim_variants(
    ring: KeyRing, changes: dict[str, Any]
) -> None:
    token = token_for(ring, **changes)
    fast = _verify_fast(token, EXPECT, ring)
    if fast is not None:
        assert fast == pyjwt_answer(token, ring)
    if not changes:
        assert fast is not None  # the common case must take the fast path at all


def test_extra_header_members_leave_the_fast_path(ring: KeyRing) -> None:
    token = token_for(ring)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    odd = b64(json.dumps({**header, "crit": ["x"]}).encode())
    forged = ".".join([odd, *token.split(".")[1:]])
    assert _verify_fast(forged, EXPECT, ring) is None


# --- one signature per token: low S, unpadded, canonical base64url ------------------------------

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
NOT_CANONICAL = "token signature is not canonical ES256 (r || low s, unpadded base64url)"


def signature_of(token: str) -> tuple[int, int]:
    raw = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def with_signature(token: str, segment: str) -> str:
    return ".".join([*token.split(".")[:2], segment])


def high_s_twin(token: str) -> str:
    """The same token with (r, n - s): an equally valid ECDSA signature of the same input."""
    r, s = signature_of(token)
    return with_signature(token, b64(r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")))


def refused_on_both_paths(token: str, ring: KeyRing) -> str:
    """The message both verification paths refuse `token` with (the fast path defers)."""
    assert _verify_fast(token, EXPECT, ring) is None
    with pytest.raises(TokenInvalid) as caught:
        _verify_pyjwt(token, EXPECT, ring)
    with pytest.raises(TokenInvalid) as again:
        verify(token, EXPECT, keys=ring, now=time.time())
    assert again.value.detail == caught.value.detail
    return caught.value.detail


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jti=st.text(min_size=1, max_size=40))
def test_minted_signatures_are_low_s_and_their_high_s_twins_are_refused(
    ring: KeyRing, jti: str
) -> None:
    token = token_for(ring, jti=jti)
    r, s = signature_of(token)
    assert 0 < s <= P256_ORDER // 2  # mint normalises: about half of raw ECDSA s are high
    assert _verify_fast(token, EXPECT, ring) is not None  # the canonical form is accepted
    twin = high_s_twin(token)
    assert twin != token and signature_of(twin) == (r, P256_ORDER - s)
    assert refused_on_both_paths(twin, ring) == NOT_CANONICAL


def test_padded_and_non_canonical_signature_encodings_are_refused(ring: KeyRing) -> None:
    token = token_for(ring)
    segment = token.split(".")[2]
    assert len(segment) == 86  # 64 bytes, no padding
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(segment[-1])
    same_bytes = (
        segment[:-1]
        + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[
            last ^ 1  # one of the 4 unused low bits of the last character: the same 64 bytes
        ]
    )
    pyjwt_refuses = "malformed token header: Invalid crypto padding"  # PyJWT's own check
    variants = {
        segment + "==": NOT_CANONICAL,  # the padding base64 would have: PyJWT accepts it
        segment + "=": pyjwt_refuses,
        same_bytes: pyjwt_refuses,
    }
    for variant, refusal in variants.items():
        assert base64.urlsafe_b64decode(variant + "==")[:64] == base64.urlsafe_b64decode(
            segment + "=="
        )
        assert refused_on_both_paths(with_signature(token, variant), ring) == refusal
