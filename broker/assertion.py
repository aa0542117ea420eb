"""The FIDO2 relying party: the one place that calls python-fido2's server.

fido2 raises bare ValueError (and KeyError/TypeError on malformed input); they become
`AssertionRejected` here so nothing above this module sees a library exception.

fido2's server logs raw credential ids (hex) at DEBUG and INFO; the broker's promise is that
raw ids never reach a log (only their `cid` hash does), so its logger drops every record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from broker.errors import AssertionRejected

ES256, EDDSA = -7, -8
WebAuthnJson = dict[str, Any]
"""A WebAuthn JSON object (creation/request options, a credential response, or fido2's
ceremony state): its shape is the WebAuthn spec's, checked by fido2 here and nowhere else."""
# The model id vouch_delegate's software authenticator reports (kept here: the broker does not
# depend on the SDK). Self-reported under attestation "none": a guard against mistakes.
SOFTWARE_AAGUID = "790e0a4e-8962-48d8-bea7-ad25caab203f"


def _drop(record: logging.LogRecord) -> bool:
    return False


# A filter on the logger itself holds whatever level the process or a test sets.
logging.getLogger("fido2.server").addFilter(_drop)


@dataclass(frozen=True)
class Registered:
    credential: AttestedCredentialData
    counter: int
    user_verified: bool
    aaguid: str

    @property
    def software(self) -> bool:
        """It claims to be the `vouch` software authenticator (self-reported)."""
        return self.aaguid == SOFTWARE_AAGUID


@dataclass(frozen=True)
class Asserted:
    credential_id: bytes
    counter: int
    user_verified: bool
    user_handle: bytes | None


class RelyingParty:
    """Begin and complete registration and authentication ceremonies (no storage)."""

    def __init__(
        self,
        rp_id: str,
        rp_name: str,
        origins: Sequence[str],
        *,
        aaguids: Sequence[str] = (),
        allow_software: bool = False,
    ) -> None:
        allowed = frozenset(origins)
        self.server = Fido2Server(
            PublicKeyCredentialRpEntity(id=rp_id, name=rp_name),
            attestation=None,
            verify_origin=lambda origin: origin in allowed,
        )
        self.server.allowed_algorithms = [
            PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)
            for alg in (ES256, EDDSA)
        ]
        self.aaguids = frozenset(a.lower() for a in aaguids)
        self.allow_software = allow_software

    def register_begin(
        self,
        email: str,
        handle: bytes,
        existing: Sequence[AttestedCredentialData],
        *,
        uv: bool,
        challenge: bytes | None = None,
    ) -> tuple[WebAuthnJson, WebAuthnJson]:
        options, state = self.server.register_begin(
            PublicKeyCredentialUserEntity(id=handle, name=email, display_name=email),
            credentials=list(existing),
            resident_key_requirement=ResidentKeyRequirement.PREFERRED,
            user_verification=_uv(uv),
            challenge=challenge,
        )
        return dict(options), dict(state)

    def register_complete(self, state: WebAuthnJson, response: WebAuthnJson) -> Registered:
        """Raises: AssertionRejected when the response does not verify."""
        try:
            auth_data = self.server.register_complete(
                state, RegistrationResponse.from_dict(response)
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AssertionRejected(f"registration rejected: {_reason(exc)}") from None
        credential = auth_data.credential_data
        if credential is None:
            raise AssertionRejected("registration rejected: no credential data")
        aaguid = str(credential.aaguid)
        if aaguid == SOFTWARE_AAGUID and not self.allow_software:
            raise AssertionRejected(
                "software authenticators are not accepted here (VOUCH_ALLOW_SOFTWARE_KEYS)"
            )
        if self.aaguids and aaguid.lower() not in self.aaguids:
            raise AssertionRejected(f"authenticator model {aaguid} is not allowed")
        return Registered(credential, auth_data.counter, auth_data.is_user_verified(), aaguid)

    def authenticate_begin(
        self,
        credentials: Sequence[AttestedCredentialData | PublicKeyCredentialDescriptor],
        *,
        uv: bool,
        challenge: bytes | None = None,
    ) -> tuple[WebAuthnJson, WebAuthnJson]:
        # No list at all (not an empty one) when there is nothing to allow, so an unknown
        # email looks exactly like a usernameless login.
        options, state = self.server.authenticate_begin(
            list(credentials) or None, user_verification=_uv(uv), challenge=challenge
        )
        return dict(options), dict(state)

    def authenticate_complete(
        self,
        state: WebAuthnJson,
        credentials: Sequence[AttestedCredentialData],
        response: WebAuthnJson,
    ) -> Asserted:
        """Raises: AssertionRejected when the assertion does not verify."""
        try:
            parsed = AuthenticationResponse.from_dict(response)
            self.server.authenticate_complete(state, list(credentials), parsed)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AssertionRejected(f"assertion rejected: {_reason(exc)}") from None
        auth_data = parsed.response.authenticator_data
        return Asserted(
            parsed.raw_id,
            auth_data.counter,
            auth_data.is_user_verified(),
            parsed.response.user_handle,
        )


def parse_credential_id(response: WebAuthnJson) -> bytes:
    """The credential id a client claims, before verification (to find the stored key).

    Raises:
        AssertionRejected: the response is malformed.
    """
    try:
        return bytes(AuthenticationResponse.from_dict(response).raw_id)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AssertionRejected(f"assertion rejected: {_reason(exc)}") from None


def _uv(required: bool) -> UserVerificationRequirement:
    return (
        UserVerificationRequirement.REQUIRED if required else UserVerificationRequirement.PREFERRED
    )


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
