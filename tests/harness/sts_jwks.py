"""Verify a web identity token's signature with keys fetched from its issuer, like STS.

STS reads `<iss>/.well-known/openid-configuration`, follows `jwks_uri` and caches the key
set per issuer; a token whose `kid` is not in the cached set makes it fetch again once.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import jwt

from tests.harness.sts_checks import ALGORITHMS, StsError, invalid_token

FETCH_TIMEOUT_S = 5.0
"""STS gives the issuer about 5 seconds to answer."""
_NO_KEY = (
    "Couldn't retrieve verification key from your identity provider, "
    "please reference AssumeRoleWithWebIdentity documentation for requirements"
)


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, before any verification.

    Raises:
        StsError: InvalidIdentityToken when it is not a JWT with an allowed algorithm.
    """
    try:
        parts = jwt.PyJWS().decode_complete(token, options={"verify_signature": False})
        header, claims = parts["header"], json.loads(parts["payload"])
    except (jwt.PyJWTError, ValueError):
        raise invalid_token(
            "The ID Token provided is not a valid JWT. "
            "(You may see this error if you sent an Access Token)"
        ) from None
    if header.get("alg") not in ALGORITHMS:
        raise invalid_token(f"Unsupported token algorithm {header.get('alg')!r}")
    if not isinstance(claims, dict):
        raise invalid_token("The ID Token provided is not a valid JWT.")
    return header, claims


class JwksCache:
    """Key sets per issuer, fetched over HTTP; thread-safe."""

    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.fetches = 0
        self._keys: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every cached key set and zero the fetch counter."""
        with self._lock:
            self._keys.clear()
            self.fetches = 0

    def verify(self, token: str, issuer: str, header: Mapping[str, Any]) -> None:
        """Check the token's signature with the issuer's key named by `kid`.

        Raises:
            StsError: InvalidIdentityToken (unknown kid, wrong key type, bad signature),
                IDPCommunicationError (issuer unreachable).
        """
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token(f"{_NO_KEY} (the token header has no kid)")
        with self._lock:
            cached = self._keys.get(issuer)
        if cached is None or kid not in cached:
            cached = self._fetch(issuer)
        if kid not in cached:
            raise invalid_token(_NO_KEY)
        alg = str(header["alg"])
        try:
            key = jwt.PyJWK(cached[kid], algorithm=alg)
            jwt.PyJWS().decode(token, key=key, algorithms=[alg])
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            raise invalid_token(f"The key {kid!r} cannot verify {alg} signatures") from None
        except jwt.PyJWTError:
            raise invalid_token("Token signature verification failed") from None

    def _fetch(self, issuer: str) -> dict[str, dict[str, Any]]:
        config = self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise invalid_token(f"{_NO_KEY} (no jwks_uri in the openid-configuration)")
        keys = self._get_json(jwks_uri).get("keys")
        if not isinstance(keys, list):
            raise invalid_token(f"{_NO_KEY} (the JWKS has no keys list)")
        by_kid = {
            str(k["kid"]): k
            for k in keys
            if isinstance(k, dict) and "kid" in k and k.get("use", "sig") == "sig"
        }
        with self._lock:
            self._keys[issuer] = by_kid
            self.fetches += 1
        return by_kid

    def _get_json(self, url: str) -> dict[str, Any]:
        if not url.startswith(("https://", "http://")):
            raise invalid_token(f"{_NO_KEY} (not an http(s) URL: {url})")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise invalid_token(f"{_NO_KEY} ({url} answered HTTP {exc.code})") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise StsError(
                "IDPCommunicationError", f"Couldn't reach the identity provider at {url}: {exc}"
            ) from None
        except ValueError:
            raise invalid_token(f"{_NO_KEY} ({url} did not answer JSON)") from None
        if not isinstance(data, dict):
            raise invalid_token(f"{_NO_KEY} ({url} did not answer a JSON object)")
        return data
