"""JWS tokens: mint with the active key, verify with an explicit type and algorithm allow-list.

Signing is written here (a few lines over `Signer.sign`) so one code path serves local keys and
KMS alike. Verification has two paths with one meaning. The fast path (one split, msgspec,
one `cryptography` verify) only ever accepts: it takes a token when every check PyJWT would
make passes, and hands anything unusual or wrong to PyJWT, whose answer and error message are
then final. Every exchange verifies a token, and PyJWT's generic parsing cost as much as the
signature check itself. Times are checked against a `now` the caller passes in.

A token has one spelling. ECDSA signatures are malleable: (r, n - s) verifies wherever (r, s)
does, and base64url can be padded or end in unused bits. Minting therefore always writes the
low-S form, unpadded, and both paths refuse any other, so nobody holding a token can make a
second string that verifies as the same token (which a deny list or log keyed on the token
text would miss).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from broker.errors import TokenExpired, TokenInvalid
from broker.keys import ALGORITHM, KeyRing, b64url
from broker.revocation import signing_key_revoked

SESSION_TYP: Final = "vouch-session+jwt"
AGENT_TYP: Final = "vouch-agent+jwt"
STS_TYP: Final = "JWT"

_REGISTERED = ("iss", "aud", "sub", "iat", "exp", "jti")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_FAST_HEADER = frozenset({"alg", "typ", "kid"})
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER: Final = _P256_ORDER // 2
NOT_CANONICAL: Final = "token signature is not canonical ES256 (r || low s, unpadded base64url)"


def mint(claims: Mapping[str, Any], *, typ: str, keys: KeyRing) -> str:
    """Sign `claims` as a compact JWS with header {alg, typ, kid}."""
    header = {"alg": ALGORITHM, "typ": typ, "kid": keys.signer.kid}
    signing_input = f"{b64url(_encode(header))}.{b64url(_encode(claims))}".encode("ascii")
    signature = _low_s(keys.signer.sign(signing_input))
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def _low_s(signature: bytes) -> bytes:
    """The same ECDSA signature with s in the lower half of the group order (the one form
    verification accepts). Signers, local or KMS, give either half."""
    s = int.from_bytes(signature[32:], "big")
    if s <= _HALF_ORDER:
        return signature
    return signature[:32] + (_P256_ORDER - s).to_bytes(32, "big")


def _canonical_signature(segment: bytes) -> bytes | None:
    """The 64-byte r || s of a canonical signature segment, or None (padded, unused bits
    set, wrong length, s in the upper half)."""
    signature = _segment(segment)
    if signature is None or len(signature) != 64:
        return None
    return signature if 0 < int.from_bytes(signature[32:], "big") <= _HALF_ORDER else None


@dataclass(frozen=True)
class Expectation:
    """What a verifier demands of one token type."""

    typ: str
    issuer: str
    audience: str
    required: tuple[str, ...] = _REGISTERED
    leeway_s: int = 30


def verify(token: str, expect: Expectation, *, keys: KeyRing, now: float) -> dict[str, Any]:
    """The verified claims of `token`.

    Raises:
        TokenInvalid: bad format, type, algorithm, key, signature, issuer, audience or claims.
        TokenExpired: expired (beyond the leeway).
        TokenRevoked: signed by a key this process knows to be revoked.
    """
    claims = _verify_fast(token, expect, keys)
    if claims is None:
        claims = _verify_pyjwt(token, expect, keys)
    _check_times(claims, now, expect.leeway_s)
    return claims


def _verify_pyjwt(token: str, expect: Expectation, keys: KeyRing) -> dict[str, Any]:
    """The reference path: PyJWT decides, and its error is the one the caller sees."""
    header = _header(token)
    if header.get("typ") != expect.typ:
        raise TokenInvalid(f"token type {header.get('typ')!r} is not {expect.typ!r}")
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"algorithm {header.get('alg')!r} is not allowed")
    public_key = keys.public_keys.get(str(header.get("kid")))
    if public_key is None:
        if header.get("kid") in keys.revoked:
            raise signing_key_revoked()
        raise TokenInvalid("token signed by an unknown key")
    if _canonical_signature(token.rpartition(".")[2].encode("ascii", "replace")) is None:
        raise TokenInvalid(NOT_CANONICAL)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=expect.audience,
            issuer=expect.issuer,
            options={
                "require": list(expect.required),
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"token rejected: {exc}") from None
    return claims


def _verify_fast(token: str, expect: Expectation, keys: KeyRing) -> dict[str, Any] | None:
    """The claims when the token passes every check PyJWT makes; None means "ask PyJWT".

    Accepting here implies PyJWT accepts with the same claims: segments are canonical
    unpadded base64url (as PyJWT 2.10+ demands), the header holds only alg/typ/kid, the key
    is P-256, the signature is 64 raw bytes with a low s, and iss/aud/required/sub/jti are
    PyJWT's rules.
    """
    if not isinstance(token, str) or len(token) > 16_384 or not token.isascii():
        return None
    parts = token.encode("ascii").split(b".")
    if len(parts) != 3:
        return None
    key = _fast_key(parts[0], expect, keys)
    signature = _canonical_signature(parts[2])
    if key is None or signature is None:
        return None
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), b".".join(parts[:2]), _ECDSA_SHA256)
    except InvalidSignature:
        return None
    claims = _json_segment(parts[1])
    return claims if isinstance(claims, dict) and _claims_pass(claims, expect) else None


def _fast_key(
    segment: bytes, expect: Expectation, keys: KeyRing
) -> ec.EllipticCurvePublicKey | None:
    """The P-256 key named by a plain {alg, typ, kid} header of the expected type, else None."""
    header = _json_segment(segment)
    if not isinstance(header, dict) or not _FAST_HEADER.issuperset(header):
        return None
    kid = header.get("kid")
    if (
        header.get("typ") != expect.typ
        or header.get("alg") != ALGORITHM
        or not isinstance(kid, str)
    ):
        return None
    key = keys.public_keys.get(kid)
    return key if key is not None and key.curve.name == "secp256r1" else None


def _claims_pass(claims: dict[str, Any], expect: Expectation) -> bool:
    """PyJWT's claim rules with our options: required, iss, aud (str or list), sub, jti."""
    if any(claims.get(name) is None for name in expect.required):
        return False
    aud = claims.get("aud")
    aud_ok = aud == expect.audience or (
        isinstance(aud, list) and expect.audience in aud and all(isinstance(a, str) for a in aud)
    )
    return (
        aud_ok
        and claims.get("iss") == expect.issuer
        and isinstance(claims.get("sub", ""), str)
        and isinstance(claims.get("jti", ""), str)
    )


def _segment(segment: bytes) -> bytes | None:
    """A canonical unpadded base64url segment decoded, else None."""
    try:
        data = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if base64.urlsafe_b64encode(data).rstrip(b"=") == segment else None


def _json_segment(segment: bytes) -> Any:
    data = _segment(segment)
    if data is None:
        return None
    try:
        return _decode(data)
    except (ValueError, RecursionError):  # msgspec.DecodeError, or UTF-8 that is not
        return None


def signing_kid(token: str) -> str:
    """The `kid` of a token `verify` accepted: the key that signed it (a revocation handle)."""
    header = _json_segment(token.partition(".")[0].encode("ascii")) if token.isascii() else None
    return str((header if isinstance(header, dict) else _header(token)).get("kid"))


def _header(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 16_384:
        raise TokenInvalid("not a compact JWS")
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"malformed token header: {exc}") from None


def _check_times(claims: dict[str, Any], now: float, leeway: int) -> None:
    for name in ("iat", "exp", "nbf"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TokenInvalid(f"claim {name!r} must be an integer timestamp")
    if claims["exp"] <= now - leeway:
        raise TokenExpired("token expired")
    if claims["iat"] > now + leeway:
        raise TokenInvalid("token issued in the future")
    if claims.get("nbf", 0) > now + leeway:
        raise TokenInvalid("token not valid yet")
