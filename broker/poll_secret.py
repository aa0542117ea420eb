"""The poll secret of an agent's request: its verifier, and the key its token is sealed to.

The broker keeps only what cannot open anything: a SHA-256 verifier of the secret and an
X25519 public key derived from it. The approved token is sealed to that public key (an
ephemeral X25519 agreement, HKDF-SHA256, AES-256-GCM bound to the request id), so Redis, its
AOF and its backups never hold a usable token; only a poll that presents the secret can
re-derive the private key and open it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_KEY_INFO = b"vouch-dreq-poll-key-v1"
_SEAL_INFO = b"vouch-dreq-seal-v1\0"
_NONCE = 12
_POINT = 32


class SealBroken(Exception):
    """A sealed token that this secret cannot open (wrong secret, request or tampering)."""


def new_secret() -> str:
    """256 random bits, base64url: given to the agent once, never stored."""
    return secrets.token_urlsafe(32)


def verifier(secret: str) -> str:
    """What is stored to recognise the secret (SHA-256: the secret has 256 random bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(stored_verifier: str, secret: str) -> bool:
    return hmac.compare_digest(stored_verifier, verifier(secret))


def _private_key(secret: str) -> X25519PrivateKey:
    seed = HKDF(SHA256(), 32, salt=None, info=_KEY_INFO).derive(secret.encode())
    return X25519PrivateKey.from_private_bytes(seed)


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key(secret: str) -> str:
    """The sealing key for this secret, base64url: safe to store."""
    return _b64(_raw(_private_key(secret).public_key()))


def _aead(shared: bytes, ephemeral: bytes, recipient: bytes, req_id: str) -> AESGCM:
    info = _SEAL_INFO + req_id.encode()
    key = HKDF(SHA256(), 32, salt=ephemeral + recipient, info=info).derive(shared)
    return AESGCM(key)


def seal(token: str, *, to: str, req_id: str) -> str:
    """`token` readable only with the secret behind the public key `to`, for this request."""
    recipient = _unb64(to)
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    sender = _raw(ephemeral.public_key())
    nonce = secrets.token_bytes(_NONCE)
    sealed = _aead(shared, sender, recipient, req_id).encrypt(
        nonce, token.encode(), req_id.encode()
    )
    return _b64(sender + nonce + sealed)


def open_sealed(sealed: str, *, secret: str, req_id: str) -> str:
    """The token sealed to this secret's public key for this request.

    Raises:
        SealBroken: another secret, another request, or altered bytes.
    """
    try:
        blob = _unb64(sealed)
        sender, nonce, body = blob[:_POINT], blob[_POINT : _POINT + _NONCE], blob[_POINT + _NONCE :]
        private = _private_key(secret)
        recipient = _raw(private.public_key())
        shared = private.exchange(X25519PublicKey.from_public_bytes(sender))
        plain = _aead(shared, sender, recipient, req_id).decrypt(nonce, body, req_id.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealBroken("the sealed token does not open with this poll secret") from exc
    return plain.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
