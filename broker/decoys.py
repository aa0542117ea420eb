"""Decoy key lists, so that login by email does not tell who is enrolled.

`POST /v1/login/begin {"email": X}` lists X's active keys. An email with none (never
enrolled, or revoked) gets decoy credential ids instead: derived from the email with a
server secret (HMAC-SHA256), so they are stable for that email, look like real ids (the
length of the most recently enrolled key's id) and match no key anywhere. The secret is
made once, at random, and kept in Redis so every replica answers alike.

``vouch:decoy`` (hash): `secret` (32 bytes), `id_len` (bytes in the last enrolled id).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import redis.asyncio as aioredis
from fido2.webauthn import PublicKeyCredentialDescriptor, PublicKeyCredentialType

from broker.store import PREFIX, guard

KEY = f"{PREFIX}decoy"
DEFAULT_ID_LEN = 64
MAX_ID_LEN = 1023  # the longest credential id WebAuthn allows


class LoginDecoys:
    """Decoy allow-lists for emails with no active key."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def note_id_length(self, length: int) -> None:
        """Make decoys look like the key just enrolled."""
        async with guard("registering a security key"):
            await self.redis.hset(KEY, "id_len", str(max(16, min(length, MAX_ID_LEN))))

    async def for_email(self, email: str) -> list[PublicKeyCredentialDescriptor]:
        """One or two decoy descriptors for `email` (one round trip)."""
        async with guard("starting a login"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hsetnx(KEY, "secret", secrets.token_bytes(32))  # the first call makes it
            pipe.hmget(KEY, ["secret", "id_len"])
            _, (secret, id_len) = await pipe.execute()
        length = int(id_len or DEFAULT_ID_LEN)
        count = 2 if _derive(secret, email, b"count", 1)[0] < 64 else 1  # 1 in 4 has a spare
        return [
            PublicKeyCredentialDescriptor(
                type=PublicKeyCredentialType.PUBLIC_KEY,
                id=_derive(secret, email, b"id%d" % n, length),
            )
            for n in range(count)
        ]


def _derive(secret: bytes, email: str, label: bytes, length: int) -> bytes:
    """`length` bytes of HMAC-SHA256(secret, label, email) in counter mode."""
    out = b""
    for block in range(-(-length // 32)):
        message = b"vouch-decoy-v1\x00" + label + b"\x00" + email.encode() + bytes([block])
        out += hmac.new(secret, message, hashlib.sha256).digest()
    return out[:length]
