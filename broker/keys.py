"""Signing keys: ES256 (P-256), `kid` = RFC 7638 thumbprint, published as a JWKS.

A key directory holds PEM files named by state so rotation is a rename:
``<kid>.active.pem`` (signs), ``<kid>.next.pem`` (published, signs after the next rotation),
``<kid>.retired-<unix>.pem`` (published until every token it signed has expired).
AWS caches the JWKS, which is why a key is published one rotation before it signs.
A stolen key is not rotated but revoked: its file is deleted and a fresh key takes its place
(`revoke_key_files`, `replace_key_dir`; the revocation itself is `broker/signing_keys.py`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from broker.errors import Unavailable

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

ALGORITHM = "ES256"
KID = re.compile(r"[A-Za-z0-9_-]{43}")
"""A kid: the base64url SHA-256 thumbprint (RFC 7638) of the public key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of a P-256 key (members in RFC 7638 order, plus use/alg/kid)."""
    numbers = public_key.public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    return {**jwk, "kid": thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) over the required EC members."""
    required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def der_to_raw(signature: bytes) -> bytes:
    """Convert an ASN.1 DER ECDSA signature into JOSE's raw r||s (32 bytes each)."""
    r, s = decode_dss_signature(signature)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Signer(Protocol):
    """Signs JWS input with the active key."""

    @property
    def kid(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class LocalSigner:
    """A P-256 private key held in process memory."""

    private_key: ec.EllipticCurvePrivateKey
    kid: str

    def sign(self, data: bytes) -> bytes:
        return der_to_raw(self.private_key.sign(data, ec.ECDSA(hashes.SHA256())))


@dataclass(frozen=True)
class KmsSigner:
    """An AWS KMS asymmetric key (ECC_NIST_P256): the private key never leaves KMS."""

    client: KMSClient
    key_id: str
    kid: str

    def sign(self, data: bytes) -> bytes:
        # KMS hashes RAW messages up to 4 KiB itself (every token we sign fits); longer input
        # is sent as its digest. (moto implements only RAW, which is why RAW comes first.)
        raw = len(data) <= 4096
        answer = self.client.sign(
            KeyId=self.key_id,
            Message=data if raw else hashlib.sha256(data).digest(),
            MessageType="RAW" if raw else "DIGEST",
            SigningAlgorithm="ECDSA_SHA_256",
        )
        return der_to_raw(answer["Signature"])


@dataclass(frozen=True)
class RevokedSigner:
    """Stands in for an active key that was revoked: nothing is signed until a new key loads."""

    kid: str

    def sign(self, data: bytes) -> bytes:
        raise Unavailable(
            f"no usable signing key: the active key {self.kid} was revoked and this replica "
            "has not loaded a new one yet"
        )


@dataclass
class KeyRing:
    """The active signer plus every public key a verifier may meet, by kid.

    One ring per process, shared by everything that signs or verifies; `update` swaps its
    contents in place when keys are reloaded or revoked (broker/signing_keys.py).
    """

    signer: Signer
    public_keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    """Kids revoked as compromised: never verified, never published, never signing."""
    generation: int = 0
    """Counts `update`s, so caches of what these keys verified know when to look again."""

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(k) for _, k in sorted(self.public_keys.items())]}

    def update(
        self,
        signer: Signer,
        public_keys: dict[str, ec.EllipticCurvePublicKey],
        revoked: frozenset[str],
    ) -> None:
        """Replace the contents, leaving out revoked keys (a revoked signer signs nothing)."""
        self.public_keys = {k: v for k, v in public_keys.items() if k not in revoked}
        self.signer = RevokedSigner(signer.kid) if signer.kid in revoked else signer
        self.revoked = revoked
        self.generation += 1


class SigningKeyError(ValueError):
    """A key directory or KMS key that cannot be used."""


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _kid_of(private_key: ec.EllipticCurvePrivateKey) -> str:
    return public_jwk(private_key.public_key())["kid"]


def write_key(directory: Path, private_key: ec.EllipticCurvePrivateKey, state: str) -> Path:
    """Write a PEM as 0600 atomically (temp file + rename), named `<kid>.<state>.pem`."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{_kid_of(private_key)}.{state}.pem"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(_pem(private_key))
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class KeyFile:
    path: Path
    kid: str
    state: str  # active | next | retired
    retired_at: int | None
    private_key: ec.EllipticCurvePrivateKey


def read_key_dir(directory: Path) -> list[KeyFile]:
    """Every PEM in the directory, checked: parseable P-256 and named after its own kid.

    Raises:
        SigningKeyError: naming every bad file.
    """
    problems: list[str] = []
    keys: list[KeyFile] = []
    for path in sorted(directory.glob("*.pem")):
        try:
            keys.append(_read_key_file(path))
        except (ValueError, TypeError, OSError) as exc:
            problems.append(f"{path.name}: {exc}")
    if problems:
        raise SigningKeyError("bad signing keys: " + "; ".join(problems))
    return keys


def _read_key_file(path: Path) -> KeyFile:
    if path.stat().st_mode & 0o077:
        raise ValueError("readable by group or others (chmod 600)")
    kid, _, state = path.name.removesuffix(".pem").partition(".")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 EC private key")
    if _kid_of(key) != kid:
        raise ValueError("file name does not match the key's thumbprint")
    retired_at = None
    if state.startswith("retired-"):
        retired_at, state = int(state.removeprefix("retired-")), "retired"
    if state not in {"active", "next", "retired"}:
        raise ValueError(f"unknown state {state!r} (active, next or retired-<unix time>)")
    return KeyFile(path, kid, state, retired_at, key)


def load_key_ring(directory: Path) -> KeyRing:
    """The ring for a key directory: exactly one active key; next and retired are published.

    Raises:
        SigningKeyError: no directory, no active key or several, or a bad file.
    """
    if not directory.is_dir():
        raise SigningKeyError(f"signing key directory {directory} does not exist")
    keys = read_key_dir(directory)
    active = [k for k in keys if k.state == "active"]
    if len(active) != 1:
        raise SigningKeyError(
            f"{directory}: need exactly one *.active.pem key, found {len(active)} "
            "(run `vouch-broker keys generate --dir DIR`)"
        )
    signer = LocalSigner(active[0].private_key, active[0].kid)
    return KeyRing(signer, {k.kid: k.private_key.public_key() for k in keys})


def generate_key_dir(directory: Path) -> list[KeyFile]:
    """Create an active and a next key in an empty (or missing) directory.

    Raises:
        SigningKeyError: the directory already holds keys.
    """
    if directory.is_dir() and any(directory.glob("*.pem")):
        raise SigningKeyError(f"{directory} already holds keys; use `keys rotate`")
    write_key(directory, generate_private_key(), "active")
    write_key(directory, generate_private_key(), "next")
    return read_key_dir(directory)


def rotate_key_dir(directory: Path, *, keep_retired_s: int, now: float | None = None) -> None:
    """next -> active, active -> retired, a fresh next; prune retired keys past their keep time.

    Raises:
        SigningKeyError: the directory has no next key to promote.
    """
    now_i = int(time.time() if now is None else now)
    keys = read_key_dir(directory)
    nexts = [k for k in keys if k.state == "next"]
    if len(nexts) != 1:
        raise SigningKeyError(f"{directory}: need exactly one *.next.pem key to rotate")
    for key in keys:
        if key.state == "active":
            os.replace(key.path, directory / f"{key.kid}.retired-{now_i}.pem")
        elif key.retired_at is not None and now_i - key.retired_at > keep_retired_s:
            key.path.unlink()
    os.replace(nexts[0].path, directory / f"{nexts[0].kid}.active.pem")
    write_key(directory, generate_private_key(), "next")


def kids_in_dir(directory: Path) -> list[str]:
    """The kid of every PEM in the directory, read from the file names (bad files included)."""
    return sorted({path.name.partition(".")[0] for path in directory.glob("*.pem")})


def revoke_key_files(directory: Path, kids: set[str]) -> dict[str, str]:
    """Delete the files of revoked keys; a fresh key replaces a revoked active or next key.

    Nothing is promoted: a `next` key may have been stolen with the active one (revoke it
    too, or use `replace_key_dir`). Returns what happened to each kid.
    """
    done = dict.fromkeys(kids, "not in this directory")
    states = set()
    for path in sorted(directory.glob("*.pem")):
        kid, _, state = path.name.removesuffix(".pem").partition(".")
        if kid in kids:
            path.unlink()
            state = "retired" if state.startswith("retired-") else state
            states.add(state)
            done[kid] = f"{state} key file deleted"
    # The new next key is written before the new active one, so a replica re-reading the
    # directory in between finds no active key and keeps what it had (its signer revoked).
    for state in ("next", "active"):
        if state in states:
            fresh = _kid_of_path(write_key(directory, generate_private_key(), state))
            done[fresh] = f"new {state} key"
    return done


def replace_key_dir(directory: Path) -> dict[str, str]:
    """Delete every key in the directory and create a fresh active and next key."""
    done = dict.fromkeys(kids_in_dir(directory), "deleted")
    for path in directory.glob("*.pem"):
        path.unlink()
    for state in ("next", "active"):
        done[_kid_of_path(write_key(directory, generate_private_key(), state))] = f"new {state} key"
    return done


def _kid_of_path(path: Path) -> str:
    return path.name.partition(".")[0]


def kms_key_ring(client: KMSClient, key_id: str) -> KeyRing:
    """A ring whose signer is a KMS key; its public key is fetched once at start.

    Raises:
        SigningKeyError: the KMS key is not an ECC_NIST_P256 signing key.
    """
    answer = client.get_public_key(KeyId=key_id)
    # Older APIs (and moto) name the spec CustomerMasterKeySpec.
    fields: dict[str, object] = dict(answer)
    spec = fields.get("KeySpec") or fields.get("CustomerMasterKeySpec")
    public_key = serialization.load_der_public_key(answer["PublicKey"])
    if (
        spec != "ECC_NIST_P256"
        or answer.get("KeyUsage") != "SIGN_VERIFY"
        or not isinstance(public_key, ec.EllipticCurvePublicKey)
        or public_key.curve.name != "secp256r1"
    ):
        raise SigningKeyError(f"KMS key {key_id} must be ECC_NIST_P256 with usage SIGN_VERIFY")
    kid = public_jwk(public_key)["kid"]
    return KeyRing(KmsSigner(client, key_id, kid), {kid: public_key})
