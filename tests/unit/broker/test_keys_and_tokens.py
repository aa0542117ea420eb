"""Signing keys (thumbprint kids, rotation) and token verification rules (invariant 6)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jwt
import pytest

from broker.errors import TokenExpired, TokenInvalid, TokenRevoked, Unavailable
from broker.keys import (
    SigningKeyError,
    generate_key_dir,
    kids_in_dir,
    load_key_ring,
    public_jwk,
    read_key_dir,
    replace_key_dir,
    revoke_key_files,
    rotate_key_dir,
    thumbprint,
)
from broker.tokens import AGENT_TYP, SESSION_TYP, Expectation, mint, signing_kid, verify

pytestmark = pytest.mark.unit
ISS = "https://vouch.example.com"


def test_rfc7638_thumbprint_example() -> None:
    # RFC 7638 section 3.1 uses RSA; this EC vector is from RFC 8037-style canonical JSON.
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }
    assert thumbprint(jwk) == "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"


def test_generate_rotate_and_prune(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = {k.state: k.kid for k in generate_key_dir(keys)}
    assert set(first) == {"active", "next"}
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in keys.glob("*.pem"))
    rotate_key_dir(keys, keep_retired_s=100, now=1000)
    second = {k.state: k.kid for k in read_key_dir(keys)}
    assert second["active"] == first["next"]  # published one rotation before it signs
    assert second["retired"] == first["active"]  # still published for tokens it signed
    ring = load_key_ring(keys)
    assert ring.signer.kid == first["next"] and len(ring.public_keys) == 3
    rotate_key_dir(keys, keep_retired_s=100, now=1200)  # the first retired key is past its keep
    kids = {k.kid for k in read_key_dir(keys)}
    assert first["active"] not in kids and len(kids) == 3


def test_key_dir_refuses_group_readable_and_renamed_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key_dir(keys)
    active = next(keys.glob("*.active.pem"))
    active.chmod(0o644)
    with pytest.raises(SigningKeyError, match="readable by group or others"):
        load_key_ring(keys)
    active.chmod(0o600)
    active.rename(keys / "wrongkid.active.pem")
    with pytest.raises(SigningKeyError, match="does not match the key's thumbprint"):
        load_key_ring(keys)
    with pytest.raises(SigningKeyError, match="already holds keys"):
        generate_key_dir(keys)


@pytest.fixture
def ring(tmp_path: Path):  # type: ignore[no-untyped-def]
    generate_key_dir(tmp_path / "k")
    return load_key_ring(tmp_path / "k")


def claims(now: int, **extra: object) -> dict[str, object]:
    return {
        "iss": ISS,
        "aud": ISS,
        "sub": "a@example.com",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        **extra,
    }


EXPECT = Expectation(typ=SESSION_TYP, issuer=ISS, audience=ISS, leeway_s=5)


def test_minted_token_has_explicit_header_and_verifies(ring) -> None:  # type: ignore[no-untyped-def]
    now = int(time.time())
    token = mint(claims(now), typ=SESSION_TYP, keys=ring)
    assert jwt.get_unverified_header(token) == {
        "alg": "ES256",
        "typ": SESSION_TYP,
        "kid": ring.signer.kid,
    }
    assert verify(token, EXPECT, keys=ring, now=now)["sub"] == "a@example.com"


@pytest.mark.parametrize(
    ("shift", "extra", "error", "message"),
    [
        (0, {"exp": -10}, TokenExpired, "expired"),
        (0, {"iat": 3600}, TokenInvalid, "issued in the future"),
        (0, {"nbf": 3600}, TokenInvalid, "not valid yet"),
        (0, {"iat": "1"}, TokenInvalid, "integer"),
    ],
)
def test_time_claims(
    ring,
    shift: int,
    extra: dict[str, object],
    error: type[Exception],  # type: ignore[no-untyped-def]
    message: str,
) -> None:
    now = int(time.time())
    values = claims(now)
    for name, delta in extra.items():
        values[name] = delta if isinstance(delta, str) else now + int(delta)  # type: ignore[call-overload]
    token = mint(values, typ=SESSION_TYP, keys=ring)
    with pytest.raises(error, match=message):
        verify(token, EXPECT, keys=ring, now=now + shift)


def test_leeway_tolerates_small_skew(ring) -> None:  # type: ignore[no-untyped-def]
    now = int(time.time())
    token = mint(claims(now, exp=now - 3), typ=SESSION_TYP, keys=ring)
    assert verify(token, EXPECT, keys=ring, now=now)["jti"] == "j"


def test_type_confusion_and_missing_claims(ring) -> None:  # type: ignore[no-untyped-def]
    now = int(time.time())
    with pytest.raises(TokenInvalid, match="is not 'vouch-session\\+jwt'"):
        verify(mint(claims(now), typ=AGENT_TYP, keys=ring), EXPECT, keys=ring, now=now)
    without_jti = {k: v for k, v in claims(now).items() if k != "jti"}
    with pytest.raises(TokenInvalid, match="jti"):
        verify(mint(without_jti, typ=SESSION_TYP, keys=ring), EXPECT, keys=ring, now=now)
    for junk in ("", "a.b", "a.b.c", "x" * 20000):
        with pytest.raises(TokenInvalid):
            verify(junk, EXPECT, keys=ring, now=now)


def test_public_jwk_shape(ring) -> None:  # type: ignore[no-untyped-def]
    jwk = public_jwk(next(iter(ring.public_keys.values())))
    assert set(jwk) == {"crv", "kty", "x", "y", "kid", "use", "alg"}


def states(directory: Path) -> dict[str, str]:
    return {k.state: k.kid for k in read_key_dir(directory)}


def test_revoking_the_active_key_makes_a_fresh_one_and_never_promotes_the_next(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    generate_key_dir(keys)
    rotate_key_dir(keys, keep_retired_s=100, now=1000)
    before = states(keys)
    done = revoke_key_files(keys, {before["active"], before["retired"], "A" * 43})
    after = states(keys)
    assert after["next"] == before["next"]  # not promoted: it may have been stolen too
    assert set(after) == {"active", "next"}
    assert after["active"] not in before.values()
    assert done == {
        before["active"]: "active key file deleted",
        before["retired"]: "retired key file deleted",
        "A" * 43: "not in this directory",
        after["active"]: "new active key",
    }
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in keys.glob("*.pem"))


def test_replace_all_leaves_only_fresh_keys_even_beside_a_bad_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key_dir(keys)
    before = set(kids_in_dir(keys))
    (keys / "garbage.retired-1.pem").write_text("not a key")  # replace-all must not stop here
    done = replace_key_dir(keys)
    after = states(keys)
    assert set(after) == {"active", "next"} and before.isdisjoint(after.values())
    assert {kid for kid, what in done.items() if what == "deleted"} == before | {"garbage"}
    assert sorted(p.name for p in keys.iterdir()) == sorted(
        f"{kid}.{state}.pem" for state, kid in after.items()
    )


def test_a_ring_refuses_tokens_of_a_revoked_key_never_publishes_it_and_stops_signing(
    ring,  # type: ignore[no-untyped-def]
) -> None:
    now = int(time.time())
    token = mint(claims(now), typ=SESSION_TYP, keys=ring)
    active = ring.signer.kid
    assert signing_kid(token) == active
    ring.update(ring.signer, ring.public_keys, frozenset({active}))
    with pytest.raises(TokenRevoked, match="its signing key was revoked") as refused:
        verify(token, EXPECT, keys=ring, now=now)
    assert refused.value.extra == {"handle": "signing-key"}
    assert active not in {k["kid"] for k in ring.jwks()["keys"]}
    assert len(ring.jwks()["keys"]) == 1  # the next key is still published
    with pytest.raises(Unavailable, match=f"the active key {active} was revoked"):
        mint(claims(now), typ=SESSION_TYP, keys=ring)
