"""The grant a person approves, in one canonical form that the key tap signs.

The WebAuthn challenge for a delegation is ``nonce(16) || SHA-256(domain || canonical grant)``,
so the CLI can check that the bytes its key signs commit to exactly the grant it shows.
"""

from __future__ import annotations

import hashlib

import msgspec

DOMAIN = b"vouch-grant-v1\x00"
NONCE_BYTES = 16


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """Who delegates what to which agent, for how long, within which limits."""

    email: str
    agent: str
    models: tuple[str, ...]
    ttl_s: int
    purpose: str = ""
    max_sts_s: int | None = None
    rate: int | None = None
    jkt: str | None = None
    """The agent key's RFC 7638 thumbprint when the token is bound to it (DPoP): the tap
    approves that key, and no other, as the agent."""
    budget: str | None = None
    """The most the delegation may spend ("5.00", the price table's currency), as written:
    the tap signs that text; spent, the delegation is revoked (broker.spend_follower)."""


def canonical_json(grant: Grant) -> bytes:
    """Compact JSON with sorted keys: the exact bytes the digest covers."""
    return msgspec.json.encode(grant, order="sorted")


def grant_digest(canonical: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + canonical).digest()


def challenge_for(canonical: bytes, nonce: bytes) -> bytes:
    return nonce + grant_digest(canonical)
