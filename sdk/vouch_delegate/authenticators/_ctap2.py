"""CTAP2 commands of the software authenticator: getInfo, makeCredential, getAssertion.

Behaviour follows CTAP 2.1 where fido2's client depends on it, and a YubiKey 5 where the
specification leaves a choice: once a PIN is set, makeCredential always needs it
(no makeCredUvNotRqd), and there is no built-in UV, only the PIN.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.webauthn import AttestedCredentialData, AuthenticatorData

from ._keyfile import Credential, KeyState
from ._pin import MIN_PIN_LENGTH, PROTOCOL_VERSIONS, Permission, PinAuthority
from ._wire import ERR, optional, p256_cose_key, require

UvMode = Literal["pin", "fail", "skip"]
"""How the authenticator treats a valid PIN token: "pin" verifies it and sets the UV
flag; "fail" rejects it (PIN_AUTH_INVALID); "skip" accepts it but leaves UV unset."""

CMD = Ctap2.CMD
FLAG = AuthenticatorData.FLAG
MAX_MSG_SIZE = 1200
MAX_CREDS_IN_LIST = 8
_CREDENTIAL_ID_LENGTH = 32
_MAX_COUNTER = 2**32 - 1


@dataclass
class _Pending:
    """Assertions still owed to getNextAssertion after a discoverable login."""

    client_data_hash: bytes
    flags: FLAG
    credentials: list[Credential]


class Ctap2Authenticator:
    """Runs decoded CTAP2 commands against a `KeyState`; `persist` saves it."""

    def __init__(self, state: KeyState, persist: Callable[[], None]) -> None:
        self.uv_mode: UvMode = "pin"  # validated by SoftwareAuthenticator.uv_mode
        self._persist = persist
        self._pin = PinAuthority(state, persist)
        self._pending: _Pending | None = None

    @property
    def state(self) -> KeyState:
        """The persistent state; replacing it keeps PIN tokens, which live in memory."""
        return self._pin.state

    @state.setter
    def state(self, state: KeyState) -> None:
        self._pin.state = state

    def handle(
        self, command: int, params: dict[Any, Any], touch: Callable[[], None]
    ) -> dict[Any, Any] | None:
        """Run one command; `touch` waits for user presence or raises CtapError.

        Raises:
            CtapError: with the status the specification gives for the failure.
        """
        # getNextAssertion is valid only as the very next command.
        pending, self._pending = self._pending, None
        if command == CMD.GET_INFO:
            return self._info()
        if command == CMD.MAKE_CREDENTIAL:
            return self._make_credential(params, touch)
        if command == CMD.GET_ASSERTION:
            return self._get_assertion(params, touch)
        if command == CMD.GET_NEXT_ASSERTION:
            return self._get_next_assertion(pending)
        if command == CMD.CLIENT_PIN:
            return self._pin.handle(params)
        if command == CMD.SELECTION:
            touch()
            return None
        raise CtapError(ERR.INVALID_COMMAND)

    def _info(self) -> dict[int, Any]:
        options = {
            "rk": True,
            "up": True,
            "plat": False,
            "clientPin": self.state.pin is not None,
            "pinUvAuthToken": True,
        }
        return {
            0x01: ["FIDO_2_0", "FIDO_2_1"],
            0x03: self.state.aaguid,
            0x04: options,
            0x05: MAX_MSG_SIZE,
            0x06: PROTOCOL_VERSIONS,
            0x07: MAX_CREDS_IN_LIST,
            0x08: _CREDENTIAL_ID_LENGTH,
            0x0A: [{"alg": ES256.ALGORITHM, "type": "public-key"}],
            0x0D: MIN_PIN_LENGTH,
        }

    def _verify_uv(
        self,
        params: dict[Any, Any],
        keys: tuple[int, int],
        message: bytes,
        permission: Permission,
        rp_id: str,
        *,
        touch: Callable[[], None],
    ) -> bool | None:
        """True when pinUvAuthParam proves the PIN, None when there is none to check."""
        param = optional(params, keys[0], bytes)
        if param is None:
            return None
        if not param:  # CTAP 2.0 platforms probe for a PIN with an empty param and a touch
            touch()
            raise CtapError(ERR.PIN_INVALID if self.state.pin else ERR.PIN_NOT_SET)
        version = require(params, keys[1], int)
        if self.uv_mode == "fail":
            raise CtapError(ERR.PIN_AUTH_INVALID)
        self._pin.verify(version, param, message, permission, rp_id)
        return self.uv_mode == "pin"

    def _make_credential(self, params: dict[Any, Any], touch: Callable[[], None]) -> dict[int, Any]:
        client_data_hash = require(params, 1, bytes)
        rp_id = require(require(params, 2, dict), "id", str)
        user = require(params, 3, dict)
        _require_es256(require(params, 4, list))
        options = _options(params, 7)
        if options.get("up") is False:  # a credential is never created without a touch
            raise CtapError(ERR.INVALID_OPTION)
        uv = self._verify_uv(
            params, (8, 9), client_data_hash, Permission.MAKE_CREDENTIAL, rp_id, touch=touch
        )
        if uv is None and self.state.pin is not None:
            raise CtapError(ERR.PUAT_REQUIRED)
        self._check_excluded(optional(params, 5, list) or [], rp_id, touch)
        touch()
        self._pin.consume()
        credential = self._store_credential(rp_id, user, discoverable=bool(options.get("rk")))
        flags = FLAG.UP | FLAG.AT | (FLAG.UV if uv else 0)
        return self._attest(credential, client_data_hash, flags)

    def _check_excluded(self, exclude: list[Any], rp_id: str, touch: Callable[[], None]) -> None:
        for descriptor in exclude:
            if isinstance(descriptor, dict) and self._find(rp_id, descriptor.get("id")):
                # A touch first, so a web page cannot silently learn which keys are enrolled.
                touch()
                raise CtapError(ERR.CREDENTIAL_EXCLUDED)

    def _find(self, rp_id: str, credential_id: Any) -> Credential | None:
        for credential in self.state.credentials:
            if credential.rp_id == rp_id and credential.credential_id == credential_id:
                return credential
        return None

    def _store_credential(
        self, rp_id: str, user: dict[Any, Any], *, discoverable: bool
    ) -> Credential:
        user_id = require(user, "id", bytes)
        if discoverable:  # one resident credential per account: a new one replaces it
            self.state.credentials = [
                c
                for c in self.state.credentials
                if not (c.discoverable and c.rp_id == rp_id and c.user_id == user_id)
            ]
        credential = Credential(
            credential_id=os.urandom(_CREDENTIAL_ID_LENGTH),
            rp_id=rp_id,
            user_id=user_id,
            user_name=optional(user, "name", str),
            display_name=optional(user, "displayName", str),
            discoverable=discoverable,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            created=1 + max((c.created for c in self.state.credentials), default=0),
        )
        self.state.credentials.append(credential)
        return credential  # persisted with the counter bump in _next_counter

    def _attest(
        self, credential: Credential, client_data_hash: bytes, flags: int
    ) -> dict[int, Any]:
        public_key = ES256(p256_cose_key(credential.private_key.public_key(), ES256.ALGORITHM))
        attested = AttestedCredentialData.create(
            self.state.aaguid, credential.credential_id, public_key
        )
        auth_data = AuthenticatorData.create(
            _rp_id_hash(credential.rp_id), FLAG(flags), self._next_counter(), attested
        )
        # "packed" self-attestation: signed by the credential's own key, no vendor cert.
        signature = _sign(credential, bytes(auth_data) + client_data_hash)
        return {1: "packed", 2: bytes(auth_data), 3: {"alg": ES256.ALGORITHM, "sig": signature}}

    def _get_assertion(self, params: dict[Any, Any], touch: Callable[[], None]) -> dict[int, Any]:
        rp_id = require(params, 1, str)
        client_data_hash = require(params, 2, bytes)
        options = _options(params, 5)
        if "rk" in options:
            raise CtapError(ERR.UNSUPPORTED_OPTION)
        up = options.get("up", True)
        uv = self._verify_uv(
            params, (6, 7), client_data_hash, Permission.GET_ASSERTION, rp_id, touch=touch
        )
        credentials = self._locate(rp_id, optional(params, 3, list))
        if not credentials:
            raise CtapError(ERR.NO_CREDENTIALS)
        if up:
            touch()
            self._pin.consume()
        flags = FLAG((FLAG.UP if up else 0) | (FLAG.UV if uv else 0))
        first, rest = credentials[0], credentials[1:]
        response = self._assert(first, client_data_hash, flags)
        if rest:
            self._pending = _Pending(client_data_hash, flags, rest)
            response[5] = len(credentials)
        return response

    def _locate(self, rp_id: str, allow_list: list[Any] | None) -> list[Credential]:
        if allow_list is not None:
            for descriptor in allow_list:
                found = isinstance(descriptor, dict) and self._find(rp_id, descriptor.get("id"))
                if found:
                    return [found]  # with an allowList the platform expects one answer
            return []
        resident = [c for c in self.state.credentials if c.discoverable and c.rp_id == rp_id]
        return sorted(resident, key=lambda c: c.created, reverse=True)

    def _get_next_assertion(self, pending: _Pending | None) -> dict[int, Any]:
        if pending is None or not pending.credentials:
            raise CtapError(ERR.NOT_ALLOWED)
        credential = pending.credentials.pop(0)
        if pending.credentials:
            self._pending = pending
        return self._assert(credential, pending.client_data_hash, pending.flags)

    def _assert(
        self, credential: Credential, client_data_hash: bytes, flags: FLAG
    ) -> dict[int, Any]:
        auth_data = AuthenticatorData.create(
            _rp_id_hash(credential.rp_id), flags, self._next_counter()
        )
        response: dict[int, Any] = {
            1: {"id": credential.credential_id, "type": "public-key"},
            2: bytes(auth_data),
            3: _sign(credential, bytes(auth_data) + client_data_hash),
        }
        if credential.discoverable:
            response[4] = _user_entity(credential, verified=bool(flags & FLAG.UV))
        return response

    def _next_counter(self) -> int:
        # Persisted before the signature leaves: a counter that went back after a crash
        # would make the broker flag this key as cloned.
        self.state.counter = min(self.state.counter + 1, _MAX_COUNTER)
        self._persist()
        return self.state.counter


def _options(params: dict[Any, Any], key: int) -> dict[str, Any]:
    # CTAP treats option keys it does not understand as absent.
    options = optional(params, key, dict) or {}
    if options.get("uv"):  # no built-in UV (fingerprint); the PIN token is the only way
        raise CtapError(ERR.INVALID_OPTION)
    return options


def _require_es256(algorithms: list[Any]) -> None:
    wanted = {"type": "public-key", "alg": ES256.ALGORITHM}
    if not any(isinstance(p, dict) and wanted.items() <= p.items() for p in algorithms):
        raise CtapError(ERR.UNSUPPORTED_ALGORITHM)


def _rp_id_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()


def _sign(credential: Credential, message: bytes) -> bytes:
    return credential.private_key.sign(message, ec.ECDSA(hashes.SHA256()))


def _user_entity(credential: Credential, *, verified: bool) -> dict[str, Any]:
    user: dict[str, Any] = {"id": credential.user_id}
    # Names identify the person, so CTAP returns them only after user verification.
    if verified and credential.user_name is not None:
        user["name"] = credential.user_name
    if verified and credential.display_name is not None:
        user["displayName"] = credential.display_name
    return user
