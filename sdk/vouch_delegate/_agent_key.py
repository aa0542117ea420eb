"""The agent's own key: what a bound agent token is bound to, and the DPoP proofs it signs.

A delegation can be bound to a P-256 key the agent holds (RFC 9449, DPoP): the token then
names the key's RFC 7638 thumbprint (`cnf.jkt`), and the broker exchanges it only with a
fresh proof signed by that key, so a copied token is worth nothing without the key.

Keys live in memory by default: `request_delegation` makes one and remembers it for this
process, where `AgentCredentials` and `boto3_session` find it by the token's thumbprint. An
agent that must survive restarts keeps its key in a file (PKCS#8 PEM, mode 0600; refused when
group or others can read it, as token files are). Proofs are signed with PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._errors import ConfigError

KEY_FILE_ENV = "VOUCH_AGENT_KEY_FILE"
DPOP_TYP = "dpop+jwt"
_remembered: dict[str, AgentKey] = {}
_lock = threading.Lock()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint_of(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an EC public JWK.

    Raises:
        ConfigError: not an EC public key with crv, x and y.
    """
    if jwk.get("kty") != "EC" or not all(isinstance(jwk.get(k), str) for k in ("crv", "x", "y")):
        raise ConfigError("not an EC public key (a JWK with kty EC, crv, x and y)")
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def htu_of(url: str) -> str:
    """The request URL as a proof names it: no query, no fragment (RFC 9449 section 4.2)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}"


class AgentKey:
    """A P-256 key pair held by an agent; signs DPoP proofs for its bound token."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigError("an agent key must be a P-256 (secp256r1) key")
        self._private = private_key
        numbers = private_key.public_key().public_numbers()
        self.public_jwk: dict[str, str] = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
        self.thumbprint = thumbprint_of(self.public_jwk)

    def __repr__(self) -> str:  # never the private key
        return f"AgentKey(thumbprint={self.thumbprint!r})"

    @classmethod
    def generate(cls) -> AgentKey:
        """A new key, in memory only, remembered for this process (see `remember`)."""
        return remember(cls(ec.generate_private_key(ec.SECP256R1())))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AgentKey:
        """The key in a PEM file, remembered for this process.

        Raises:
            ConfigError: missing, unreadable, not a P-256 private key, or readable or
                writable by group or others.
        """
        where = Path(path).expanduser()
        try:
            info = where.stat()
            if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"key file {where} is accessible to group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {where}"
                )
            data = where.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {where}: {exc.strerror or exc}") from None
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigError(f"key file {where} holds no unencrypted PEM private key") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"key file {where} holds no P-256 key")
        return remember(cls(private))

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> AgentKey:
        """A new key written to a new file (mode 0600 from the start).

        Raises:
            ConfigError: the file exists already, or cannot be written.
        """
        where = Path(path).expanduser()
        key = cls(ec.generate_private_key(ec.SECP256R1()))
        pem = key._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"{where} exists already; an agent key is never overwritten"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot create key file {where}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return remember(key)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> AgentKey:
        """The key in `path`, made there first if the file does not exist yet."""
        where = Path(path).expanduser()
        return cls.load(where) if where.exists() else cls.create(where)

    def proof(
        self, method: str, url: str, token: str, *, now: float | None = None, jti: str | None = None
    ) -> str:
        """A DPoP proof for one request: `method` and `url` (its query is left out), now,
        a new jti, and the token's hash (ath)."""
        claims = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": htu_of(url),
            "iat": int(time.time() if now is None else now),
            "ath": _b64url(hashlib.sha256(token.encode("ascii")).digest()),
        }
        headers = {"typ": DPOP_TYP, "jwk": self.public_jwk}
        return jwt.encode(claims, self._private, algorithm="ES256", headers=headers)


def remember(key: AgentKey) -> AgentKey:
    """Keep `key` for this process, so a token bound to it finds it by thumbprint."""
    with _lock:
        _remembered[key.thumbprint] = key
    return key


def remembered(thumbprint: str) -> AgentKey | None:
    """The key with this thumbprint that this process made or loaded, if any."""
    with _lock:
        return _remembered.get(thumbprint)


def bound_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The `cnf.jkt` a token's (unverified) claims bind it to, or None for a bearer token."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) and jkt else None


def key_for(
    claims: Mapping[str, Any],
    *,
    key: AgentKey | None,
    key_file: str | os.PathLike[str] | None,
    env: Mapping[str, str],
) -> AgentKey | None:
    """The key that signs proofs for a token: None for an unbound token; else `key`, else
    `key_file`, else VOUCH_AGENT_KEY_FILE, else one this process made or loaded.

    Raises:
        ConfigError: the token is bound and no key is at hand, or the key at hand is another.
    """
    jkt = bound_thumbprint(claims)
    if jkt is None:
        return None
    chosen = key
    if chosen is None and key_file:
        chosen = AgentKey.load(key_file)
    if chosen is None and env.get(KEY_FILE_ENV, "").strip():
        chosen = AgentKey.load(env[KEY_FILE_ENV].strip())
    if chosen is None:
        chosen = remembered(jkt)
    if chosen is None:
        raise ConfigError(
            f"this agent token is bound to a key (thumbprint {jkt}): pass its key file"
            f" (key_file=, --key-file or {KEY_FILE_ENV})"
        )
    if chosen.thumbprint != jkt:
        raise ConfigError(
            f"the agent key {chosen.thumbprint} is not the key this token is bound to ({jkt})"
        )
    return chosen


def thumbprint_from_file(path: str | os.PathLike[str]) -> str:
    """The thumbprint of the key in a file: a public JWK (JSON), a PEM public key, or an
    agent key file.

    Raises:
        ConfigError: none of those.
    """
    where = Path(path).expanduser()
    try:
        data = where.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {where}: {exc.strerror or exc}") from None
    text = data.strip()
    if text.startswith(b"{"):
        try:
            jwk = json.loads(text)
        except ValueError:
            raise ConfigError(f"{where} is not a JSON Web Key") from None
        if not isinstance(jwk, dict) or any(k in jwk for k in ("d", "p", "q", "k")):
            raise ConfigError(f"{where} is not a public JSON Web Key")
        return thumbprint_of(jwk)
    if b"PRIVATE KEY" in text:
        return AgentKey.load(where).thumbprint
    try:
        public = serialization.load_pem_public_key(text)
    except (ValueError, TypeError):
        raise ConfigError(f"{where} holds no public key (PEM or JWK)") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise ConfigError(f"{where} holds no P-256 public key")
    numbers = public.public_numbers()
    return thumbprint_of(
        {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
    )
