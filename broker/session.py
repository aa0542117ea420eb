"""Human session tokens: proof that a person signed in with a registered key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

import msgspec

from broker.errors import TokenInvalid
from broker.keys import KeyRing
from broker.revocation import not_before_key, session_key, signing_key_key
from broker.tokens import SESSION_TYP, Expectation, mint, signing_kid, verify
from broker.validation_messages import error_sentence

REQUIRED: Final = ("iss", "sub", "aud", "iat", "exp", "jti", "cid", "amr", "auth_time")


class SessionClaims(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The claims of a human session token (field names are the claim names)."""

    iss: str
    sub: str
    aud: str | list[str]
    iat: int
    exp: int
    jti: str
    auth_time: int
    amr: tuple[str, ...]
    cid: str
    email: str | None = None
    nbf: int | None = None


@dataclass(frozen=True)
class Person:
    """The verified holder of a human session."""

    email: str
    cid: str
    amr: tuple[str, ...]
    auth_time: int
    issued_at: int
    expires_at: int
    jti: str
    kid: str
    """The broker key that signed the session."""

    def handles(self) -> list[str]:
        """The revocation handles that end this session: the person, the security key, a
        logout and the broker key that signed it."""
        return [
            not_before_key("user", self.email),
            not_before_key("cred", self.cid),
            session_key(self.jti),
            signing_key_key(self.kid),
        ]


def amr_for(user_verified: bool) -> tuple[str, ...]:
    """RFC 8176 methods: a hardware key, plus user verification when the key did it."""
    return ("hwk", "uv") if user_verified else ("hwk",)


def mint_session(
    *, email: str, cid: str, user_verified: bool, issuer: str, ttl_s: int, now: int, keys: KeyRing
) -> tuple[str, int]:
    """A signed session token and its expiry."""
    claims = SessionClaims(
        iss=issuer,
        sub=email,
        email=email,
        aud=issuer,
        iat=now,
        nbf=now,
        exp=now + ttl_s,
        jti=secrets.token_urlsafe(16),
        auth_time=now,
        amr=amr_for(user_verified),
        cid=cid,
    )
    return mint(msgspec.to_builtins(claims), typ=SESSION_TYP, keys=keys), claims.exp


def session_expectation(issuer: str, leeway_s: int) -> Expectation:
    return Expectation(
        typ=SESSION_TYP, issuer=issuer, audience=issuer, required=REQUIRED, leeway_s=leeway_s
    )


def verify_session(token: str, expect: Expectation, *, keys: KeyRing, now: float) -> Person:
    """The person a session token names (signature, type and times checked; not revocation).

    Raises:
        TokenInvalid: see `broker.tokens.verify`, or claims of the wrong shape.
    """
    try:
        claims = msgspec.convert(verify(token, expect, keys=keys, now=now), SessionClaims)
    except msgspec.ValidationError as exc:
        raise TokenInvalid(f"session claims are malformed: {error_sentence(exc)}") from None
    return Person(
        email=claims.sub,
        cid=claims.cid,
        amr=claims.amr,
        auth_time=claims.auth_time,
        issued_at=claims.iat,
        expires_at=claims.exp,
        jti=claims.jti,
        kid=signing_kid(token),
    )
