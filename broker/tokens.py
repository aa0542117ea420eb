"""JWS tokens: mint with the active key, verify with an explicit type and algorithm allow-list.

Signing is written here (a few lines over `Signer.sign`) so one code path serves local keys and
KMS alike; verification is PyJWT's, with times checked against a `now` the caller passes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
import msgspec

from broker.errors import TokenExpired, TokenInvalid
from broker.keys import ALGORITHM, KeyRing, b64url

SESSION_TYP: Final = "vouch-session+jwt"
AGENT_TYP: Final = "vouch-agent+jwt"
STS_TYP: Final = "JWT"

_REGISTERED = ("iss", "aud", "sub", "iat", "exp", "jti")
_encode = msgspec.json.Encoder().encode


def mint(claims: Mapping[str, Any], *, typ: str, keys: KeyRing) -> str:
    """Sign `claims` as a compact JWS with header {alg, typ, kid}."""
    header = {"alg": ALGORITHM, "typ": typ, "kid": keys.signer.kid}
    signing_input = f"{b64url(_encode(header))}.{b64url(_encode(claims))}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{b64url(keys.signer.sign(signing_input))}"


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
    """
    header = _header(token)
    if header.get("typ") != expect.typ:
        raise TokenInvalid(f"token type {header.get('typ')!r} is not {expect.typ!r}")
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"algorithm {header.get('alg')!r} is not allowed")
    public_key = keys.public_keys.get(str(header.get("kid")))
    if public_key is None:
        raise TokenInvalid("token signed by an unknown key")
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
    _check_times(claims, now, expect.leeway_s)
    return claims


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
