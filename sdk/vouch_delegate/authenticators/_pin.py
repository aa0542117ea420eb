"""The authenticator side of authenticatorClientPIN, PIN/UV auth protocols 2 and 1.

The platform and the authenticator agree an ECDH secret, the platform sends the PIN's
hash encrypted under it, and the authenticator answers with an encrypted random
pinUvAuthToken. Later commands prove user verification by carrying
HMAC(token, clientDataHash). fido2's `PinProtocolV1/V2` hold the symmetric primitives,
which are the same on both ends; the key agreement and all checks are ours.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fido2.ctap import CtapError
from fido2.ctap2.pin import ClientPin, PinProtocol, PinProtocolV1, PinProtocolV2

from ._keyfile import KeyState, PinState
from ._wire import ERR, optional, p256_cose_key, require

MAX_RETRIES = 8
MIN_PIN_LENGTH = 4
# After this many wrong PINs in a row the key wants a "power cycle" (a new instance),
# which slows online guessing the way unplugging a YubiKey does.
_MAX_CONSECUTIVE_FAILURES = 3
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

CMD = ClientPin.CMD
RESULT = ClientPin.RESULT
Permission = ClientPin.PERMISSION
# Only what makeCredential/getAssertion need; a token for anything else is refused.
_SUPPORTED = Permission.MAKE_CREDENTIAL | Permission.GET_ASSERTION
_PROTOCOLS: dict[int, PinProtocol] = {2: PinProtocolV2(), 1: PinProtocolV1()}
PROTOCOL_VERSIONS = list(_PROTOCOLS)


def new_pin_state(pin: str) -> PinState:
    """The stored form of `pin`: the platform only ever sends LEFT(SHA-256(pin), 16)."""
    salt = os.urandom(16)
    return PinState(salt, _digest(hashlib.sha256(pin.encode()).digest()[:16], salt), MAX_RETRIES)


def _digest(pin_hash: bytes, salt: bytes) -> bytes:
    # Salted and slow because people reuse PINs: the file must not reveal the one on
    # their real YubiKey, even though it cannot protect the soft keys stored beside it.
    return hashlib.scrypt(pin_hash, salt=salt, **_SCRYPT)


def protocol_for(version: int) -> PinProtocol:
    """The PIN/UV auth protocol `version`.

    Raises:
        CtapError: INVALID_PARAMETER for a protocol this authenticator does not speak.
    """
    if version not in _PROTOCOLS:
        raise CtapError(ERR.INVALID_PARAMETER)
    return _PROTOCOLS[version]


def _kdf(version: int, shared_point: bytes) -> bytes:
    if version == 1:
        return hashlib.sha256(shared_point).digest()
    return b"".join(
        HKDF(hashes.SHA256(), 32, salt=b"\0" * 32, info=info).derive(shared_point)
        for info in (b"CTAP2 HMAC key", b"CTAP2 AES key")
    )


class PinAuthority:
    """Answers clientPIN subcommands and checks the pinUvAuthParam of later commands."""

    def __init__(self, state: KeyState, persist: Callable[[], None]) -> None:
        self.state = state
        self._persist = persist
        self._key_agreement = ec.generate_private_key(ec.SECP256R1())
        self._token = os.urandom(32)
        self._permissions = Permission(0)
        self._rp_id: str | None = None
        self._failures = 0

    def handle(self, params: dict[Any, Any]) -> dict[int, Any] | None:
        """Run one clientPIN subcommand.

        Raises:
            CtapError: with the status the specification gives for the failure.
        """
        protocol = protocol_for(require(params, 1, int))
        sub = require(params, 2, int)
        if sub == CMD.GET_PIN_RETRIES:
            retries = self.state.pin.retries if self.state.pin else MAX_RETRIES
            return {RESULT.PIN_RETRIES: retries}
        if sub == CMD.GET_KEY_AGREEMENT:
            return {RESULT.KEY_AGREEMENT: self._public_key()}
        if sub == CMD.SET_PIN:
            self._set_pin(protocol, params)
            return None
        if sub in (CMD.GET_TOKEN_USING_PIN, CMD.GET_TOKEN_USING_PIN_LEGACY):
            return self._get_token(protocol, params, legacy=sub == CMD.GET_TOKEN_USING_PIN_LEGACY)
        raise CtapError(ERR.INVALID_SUBCOMMAND)

    def verify(
        self, version: int, param: bytes, message: bytes, permission: Permission, rp_id: str
    ) -> None:
        """Accept `param` only as the current token's MAC of `message`, with `permission`.

        Raises:
            CtapError: PIN_NOT_SET, INVALID_PARAMETER or PIN_AUTH_INVALID.
        """
        if self.state.pin is None:
            raise CtapError(ERR.PIN_NOT_SET)
        expected = protocol_for(version).authenticate(self._token, message)
        if not hmac.compare_digest(expected, param):
            raise CtapError(ERR.PIN_AUTH_INVALID)
        if not self._permissions & permission:
            raise CtapError(ERR.PIN_AUTH_INVALID)
        if self._rp_id is not None and self._rp_id != rp_id:
            raise CtapError(ERR.PIN_AUTH_INVALID)
        self._rp_id = rp_id  # an unbound token binds to the first RP it is used for

    def consume(self) -> None:
        """Spend the token's permissions: one PIN entry authorises one touched ceremony."""
        self._permissions = Permission(0)

    def _public_key(self) -> dict[int, Any]:
        # alg -25 is what the specification mandates here, though the KDF is not HKDF-256.
        return p256_cose_key(self._key_agreement.public_key(), -25)

    def _shared_secret(self, protocol: PinProtocol, params: dict[Any, Any]) -> bytes:
        peer = require(params, 3, dict)
        try:
            x = int.from_bytes(require(peer, -2, bytes))
            y = int.from_bytes(require(peer, -3, bytes))
            public_key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        except ValueError as exc:  # not a point on P-256
            raise CtapError(ERR.INVALID_PARAMETER) from exc
        shared_point = self._key_agreement.exchange(ec.ECDH(), public_key)
        return _kdf(protocol.VERSION, shared_point)

    def _decrypt(self, protocol: PinProtocol, secret: bytes, ciphertext: bytes) -> bytes:
        try:
            return protocol.decrypt(secret, ciphertext)
        except ValueError as exc:  # not a whole number of AES blocks
            raise CtapError(ERR.INVALID_PARAMETER) from exc

    def _set_pin(self, protocol: PinProtocol, params: dict[Any, Any]) -> None:
        if self.state.pin is not None:
            raise CtapError(ERR.NOT_ALLOWED)  # changing a PIN needs the old one
        secret = self._shared_secret(protocol, params)
        new_pin_enc = require(params, 5, bytes)
        mac = protocol.authenticate(secret, new_pin_enc)
        if not hmac.compare_digest(mac, require(params, 4, bytes)):
            raise CtapError(ERR.PIN_AUTH_INVALID)
        padded = self._decrypt(protocol, secret, new_pin_enc)
        if len(padded) < 64:
            raise CtapError(ERR.INVALID_PARAMETER)
        pin = padded.rstrip(b"\0").decode(errors="replace")
        if len(pin) < MIN_PIN_LENGTH or len(pin.encode()) > 63:
            raise CtapError(ERR.PIN_POLICY_VIOLATION)
        self.state.pin = new_pin_state(pin)
        self._persist()

    def _get_token(
        self, protocol: PinProtocol, params: dict[Any, Any], *, legacy: bool
    ) -> dict[int, Any]:
        permissions = _SUPPORTED if legacy else Permission(require(params, 9, int))
        if not permissions:
            raise CtapError(ERR.INVALID_PARAMETER)
        if permissions & ~_SUPPORTED:
            raise CtapError(ERR.UNAUTHORIZED_PERMISSION)
        secret = self._shared_secret(protocol, params)
        self._check_pin(protocol, secret, require(params, 6, bytes))
        self._token = os.urandom(32)  # a fresh token voids every earlier one
        self._permissions = permissions
        self._rp_id = None if legacy else optional(params, 10, str)
        return {RESULT.PIN_UV_TOKEN: protocol.encrypt(secret, self._token)}

    def _check_pin(self, protocol: PinProtocol, secret: bytes, pin_hash_enc: bytes) -> None:
        pin = self.state.pin
        if pin is None:
            raise CtapError(ERR.PIN_NOT_SET)
        if pin.retries <= 0:
            raise CtapError(ERR.PIN_BLOCKED)
        if self._failures >= _MAX_CONSECUTIVE_FAILURES:
            raise CtapError(ERR.PIN_AUTH_BLOCKED)
        # Spend the retry on disk before checking, so cutting power mid-check buys no guess.
        pin.retries -= 1
        self._persist()
        pin_hash = self._decrypt(protocol, secret, pin_hash_enc)
        if not hmac.compare_digest(_digest(pin_hash[:16], pin.salt), pin.digest):
            self._wrong_pin(pin)
        pin.retries = MAX_RETRIES
        self._failures = 0
        self._persist()

    def _wrong_pin(self, pin: PinState) -> NoReturn:
        self._key_agreement = ec.generate_private_key(ec.SECP256R1())
        self._failures += 1
        if pin.retries <= 0:
            raise CtapError(ERR.PIN_BLOCKED)
        if self._failures >= _MAX_CONSECUTIVE_FAILURES:
            raise CtapError(ERR.PIN_AUTH_BLOCKED)
        raise CtapError(ERR.PIN_INVALID)
