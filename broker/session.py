"""Human session tokens: proof that a person signed in with a registered key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from broker.keys import KeyRing
from broker.tokens import SESSION_TYP, Expectation, mint, verify


@dataclass(frozen=True)
class Person:
    """The verified holder of a human session."""

    email: str
    cid: str
    amr: tuple[str, ...]
    auth_time: int
    issued_at: int
    expires_at: int


def amr_for(user_verified: bool) -> list[str]:
    """RFC 8176 methods: a hardware key, plus user verification when the key did it."""
    return ["hwk", "uv"] if user_verified else ["hwk"]


def mint_session(
    *, email: str, cid: str, user_verified: bool, issuer: str, ttl_s: int, now: int, keys: KeyRing
) -> tuple[str, int]:
    """A signed session token and its expiry."""
    exp = now + ttl_s
    claims = {
        "iss": issuer,
        "sub": email,
        "email": email,
        "aud": issuer,
        "iat": now,
        "nbf": now,
        "exp": exp,
        "jti": secrets.token_urlsafe(16),
        "auth_time": now,
        "amr": amr_for(user_verified),
        "cid": cid,
    }
    return mint(claims, typ=SESSION_TYP, keys=keys), exp


def session_expectation(issuer: str, leeway_s: int) -> Expectation:
    return Expectation(
        typ=SESSION_TYP,
        issuer=issuer,
        audience=issuer,
        required=("iss", "sub", "aud", "iat", "exp", "jti", "cid", "amr", "auth_time"),
        leeway_s=leeway_s,
    )


def verify_session(token: str, expect: Expectation, *, keys: KeyRing, now: float) -> Person:
    """The person a session token names (signature, type and times checked; not revocation).

    Raises:
        TokenInvalid: see `broker.tokens.verify`.
    """
    claims: dict[str, Any] = verify(token, expect, keys=keys, now=now)
    return Person(
        email=claims["sub"],
        cid=claims["cid"],
        amr=tuple(claims["amr"]),
        auth_time=claims["auth_time"],
        issued_at=claims["iat"],
        expires_at=claims["exp"],
    )
