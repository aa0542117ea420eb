"""DPoP (RFC 9449): the proof that whoever presents a key-bound agent token holds its key.

A bound token carries ``cnf.jkt``, the RFC 7638 thumbprint of the agent's public key. Each
exchange with it must carry a fresh proof in the ``DPoP`` header: a compact JWS whose header
has ``typ`` dpop+jwt, an allowed asymmetric ``alg`` and the public ``jwk`` (thumbprint =
jkt), and whose claims name this request (``htm``, ``htu``), its time (``iat``), a unique
``jti`` and the token (``ath`` = base64url SHA-256 of it). The signature is checked with
PyJWT's algorithm objects (over `cryptography`); the key built from a jwk is kept by its
thumbprint, which the hash binds to exactly those key members, so a repeat exchange of one
agent parses no key. The jti's uniqueness is not checked here: it is one more key in the
revocation round trip (`broker.revocation.Revocations.check`), so every replica sees it.

Server nonces (``DPoP-Nonce``) are not used: they cost every client a refused first
request and every exchange a nonce check, and what they add over a short `iat` window plus
the shared jti store is protection against proofs signed ahead of time by a thief who
already controls the agent's key, which a nonce only shortens to one nonce period.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
import msgspec
from jwt.algorithms import Algorithm

from broker.errors import DpopProofInvalid
from broker.store import PREFIX

DPOP_TYP: Final = "dpop+jwt"
ALGORITHMS: Final = ("ES256", "ES384", "ES512", "EdDSA")
"""Asymmetric only (RFC 9449 section 4.3): never none, never an HMAC."""
KEY_TYPES: Final = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
THUMBPRINT_MEMBERS: Final = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_PROOF_CHARS: Final = 4096
MAX_JTI_CHARS: Final = 128
WWW_AUTHENTICATE: Final = f'DPoP error="invalid_dpop_proof", algs="{" ".join(ALGORITHMS)}"'
_decode = msgspec.json.Decoder().decode


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of an EC or OKP public JWK.

    Raises:
        ValueError: another key type, or a required member missing or not a string.
    """
    members = THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError(f"key type {jwk.get('kty')!r} is not EC or OKP")
    required = {name: jwk.get(name) for name in members}
    if not all(isinstance(value, str) and value for value in required.values()):
        raise ValueError(f"a {jwk.get('kty')} key needs {', '.join(members)}")
    canonical = msgspec.json.encode(required, order="sorted")
    return b64url(hashlib.sha256(canonical).digest())


def agent_key_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The thumbprint of an agent's public key as sent with its delegation request.

    Raises:
        ValueError: a private key, a key type or curve no allowed alg signs with, or a
            malformed key (the message says which).
    """
    if PRIVATE_MEMBERS & jwk.keys():
        raise ValueError("jwk holds a private key; send only the public key")
    kinds = {kind: alg for alg, kind in KEY_TYPES.items()}
    alg = kinds.get((jwk.get("kty"), jwk.get("crv")))  # type: ignore[arg-type]
    if alg is None:
        raise ValueError(
            f"jwk must be an EC P-256, P-384, P-521 or OKP Ed25519 public key,"
            f" not {jwk.get('kty')!r} {jwk.get('crv')!r}"
        )
    thumbprint = jwk_thumbprint(jwk)
    public = {name: jwk[name] for name in THUMBPRINT_MEMBERS[str(jwk["kty"])]}
    try:
        jwt.get_algorithm_by_name(alg).from_jwk(public)
    except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise ValueError(f"jwk is not a usable public key: {exc}") from None
    return thumbprint


def token_hash(token: str) -> str:
    """`ath`: base64url SHA-256 of the token's ASCII bytes (RFC 9449 section 4.2)."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def normalize_htu(url: str) -> str | None:
    """A URL as RFC 9449 section 4.3 compares it: scheme and host lower-case, a default port
    dropped, an empty path as /, percent-escapes upper-case, no query, no fragment. None
    when it is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in {"http", "https"} or not host or parts.username or parts.password:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    path = _upper_escapes(parts.path or "/")
    return f"{scheme}://{host}{path}"


def _upper_escapes(path: str) -> str:
    pieces = path.split("%")
    return pieces[0] + "".join("%" + p[:2].upper() + p[2:] for p in pieces[1:])


def replay_key(jkt: str, jti: str) -> str:
    """The Redis key that remembers a proof's jti for its key while the proof could pass."""
    return f"{PREFIX}dpop:{jkt}:{jti}"


class ProofClaims(msgspec.Struct, frozen=True):
    jti: str
    htm: str
    htu: str
    iat: int
    ath: str | None = None


@dataclass(frozen=True)
class Proof:
    """A verified proof: whose key, which jti (to record), until when it could pass."""

    jkt: str
    jti: str
    iat: int
    remember_s: int
    """How long its jti must be remembered: as long as its iat stays acceptable."""

    @property
    def replay_key(self) -> str:
        return replay_key(self.jkt, self.jti)


class ProofVerifier:
    """Checks DPoP proofs against a bound token, the request and the clock."""

    def __init__(self, *, max_age_s: int, leeway_s: int, key_cache_size: int = 4096) -> None:
        self.max_age_s = max_age_s
        self.leeway_s = leeway_s
        self.key_cache_size = key_cache_size
        self._keys: OrderedDict[str, tuple[Algorithm, Any]] = OrderedDict()
        self._algorithms = {name: jwt.get_algorithm_by_name(name) for name in ALGORITHMS}

    def verify(
        self, proof: str | None, *, jkt: str, token: str, method: str, htu: str, now: float
    ) -> Proof:
        """The proof, once it is valid for this token, request and moment.

        Raises:
            DpopProofInvalid: missing, malformed, another key, another request, too old or
                too new, or for another token; the detail says which.
        """
        if proof is None:
            raise DpopProofInvalid(
                "this token is bound to a key (cnf.jkt): send a DPoP proof of that key"
                " in the DPoP header"
            )
        parts = proof.split(".") if len(proof) <= MAX_PROOF_CHARS and proof.isascii() else []
        if len(parts) != 3:
            raise DpopProofInvalid("the DPoP proof is not a compact JWS")
        header = _json(parts[0], "header")
        algorithm, key = self._key(header, jkt)
        signature = _segment(parts[2], "signature")
        if not algorithm.verify(f"{parts[0]}.{parts[1]}".encode("ascii"), key, signature):
            raise DpopProofInvalid("the DPoP proof's signature is invalid")
        claims = self._claims(_json(parts[1], "claims"))
        if claims.htm != method:
            raise DpopProofInvalid(
                f"the DPoP proof's htm {claims.htm!r} is not this request's method {method}"
            )
        if normalize_htu(claims.htu) != htu:
            raise DpopProofInvalid(f"the DPoP proof's htu {claims.htu!r} is not {htu}")
        if claims.iat < now - self.max_age_s:
            raise DpopProofInvalid(
                f"the DPoP proof is too old: issued {int(now - claims.iat)} s ago,"
                f" at most {self.max_age_s} s are accepted"
            )
        if claims.iat > now + self.leeway_s:
            raise DpopProofInvalid(
                f"the DPoP proof is issued in the future ({int(claims.iat - now)} s ahead)"
            )
        if claims.ath is None:
            raise DpopProofInvalid("the DPoP proof has no ath (the token's hash)")
        if claims.ath != token_hash(token):
            raise DpopProofInvalid("the DPoP proof's ath is not the hash of this token")
        remember = int(claims.iat + self.max_age_s - now) + 1
        return Proof(jkt, claims.jti, claims.iat, max(1, remember))

    def _key(self, header: Any, jkt: str) -> tuple[Algorithm, Any]:
        """The algorithm and public key of a proof header, once it is the bound key's."""
        if not isinstance(header, dict):
            raise DpopProofInvalid("the DPoP proof's header is not a JSON object")
        if header.get("typ") != DPOP_TYP:
            raise DpopProofInvalid(f"the DPoP proof's typ {header.get('typ')!r} is not dpop+jwt")
        alg = header.get("alg")
        if alg not in KEY_TYPES:
            raise DpopProofInvalid(
                f"the DPoP proof's alg {alg!r} is not allowed (allowed: {', '.join(ALGORITHMS)})"
            )
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise DpopProofInvalid("the DPoP proof's header has no jwk (the public key)")
        if PRIVATE_MEMBERS & jwk.keys():
            raise DpopProofInvalid(
                "the DPoP proof's jwk holds a private key; send only the public key"
            )
        if (jwk.get("kty"), jwk.get("crv")) != KEY_TYPES[alg]:
            kty, crv = KEY_TYPES[alg]
            raise DpopProofInvalid(f"alg {alg} needs a {kty} {crv} key in the DPoP proof's jwk")
        try:
            thumbprint = jwk_thumbprint(jwk)
        except ValueError as exc:
            raise DpopProofInvalid(f"the DPoP proof's jwk is malformed: {exc}") from None
        if thumbprint != jkt:
            raise DpopProofInvalid(
                "the DPoP proof is signed by another key than the one this token is bound to"
            )
        cached = self._keys.get(thumbprint)
        if cached is not None and cached[0] is self._algorithms[alg]:
            self._keys.move_to_end(thumbprint)
            return cached
        algorithm = self._algorithms[alg]
        try:
            public = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
            key = algorithm.from_jwk(public)
        except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise DpopProofInvalid(f"the DPoP proof's jwk is not a usable key: {exc}") from None
        self._keys[thumbprint] = (algorithm, key)
        if len(self._keys) > self.key_cache_size:
            self._keys.popitem(last=False)
        return algorithm, key

    @staticmethod
    def _claims(raw: Any) -> ProofClaims:
        if not isinstance(raw, dict):
            raise DpopProofInvalid("the DPoP proof's claims are not a JSON object")
        for name in ("jti", "htm", "htu", "iat"):
            if name not in raw:
                raise DpopProofInvalid(f"the DPoP proof has no {name} claim")
        try:
            claims = msgspec.convert(raw, ProofClaims)
        except msgspec.ValidationError as exc:
            raise DpopProofInvalid(f"the DPoP proof's claims are malformed: {exc}") from None
        if not 0 < len(claims.jti) <= MAX_JTI_CHARS or not claims.jti.isprintable():
            raise DpopProofInvalid(f"the DPoP proof's jti must be 1 to {MAX_JTI_CHARS} characters")
        return claims


def _segment(segment: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise DpopProofInvalid(f"the DPoP proof's {what} is not base64url") from None


def _json(segment: str, what: str) -> Any:
    try:
        return _decode(_segment(segment, what))
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        raise DpopProofInvalid(f"the DPoP proof's {what} is not JSON") from None
