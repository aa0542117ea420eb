"""fido2's real relying party (`Fido2Server`) and client plumbing for these tests.

Nothing here imitates fido2: the server verifies signatures, flags and challenges
itself, and `RecordingDevice` only watches the CTAP2 requests the real client sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from threading import Event
from typing import Any

from fido2 import cbor
from fido2.client import Fido2Client
from fido2.ctap import STATUS, CtapDevice
from fido2.hid import CTAPHID
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from vouch_delegate.authenticators import make_client

ORIGIN = "https://vouch.example.com"
RP_ID = "vouch.example.com"
REQUIRED = UserVerificationRequirement.REQUIRED
DISCOURAGED = UserVerificationRequirement.DISCOURAGED


def person(name: str) -> PublicKeyCredentialUserEntity:
    """A WebAuthn user entity whose id is derived from `name`."""
    return PublicKeyCredentialUserEntity(
        id=f"user-{name}".encode(), name=f"{name}@example.com", display_name=name.title()
    )


class RecordingDevice(CtapDevice):
    """Passes every command to `inner` and keeps the decoded CTAP2 requests."""

    def __init__(self, inner: CtapDevice) -> None:
        self.inner = inner
        self.requests: list[tuple[int, dict[Any, Any]]] = []

    @property
    def capabilities(self) -> int:
        return self.inner.capabilities

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if cmd == CTAPHID.CBOR:
            params = cbor.decode(data[1:]) if len(data) > 1 else {}
            assert isinstance(params, dict)
            self.requests.append((data[0], params))
        return self.inner.call(cmd, data, event, on_keepalive)

    def sent(self, command: int) -> list[dict[Any, Any]]:
        """The parameter maps of every `command` request so far."""
        return [params for cmd, params in self.requests if cmd == command]

    @classmethod
    def list_devices(cls) -> Iterator[RecordingDevice]:
        return iter(())


@dataclass
class Person:
    """The human at the keyboard: answers PIN requests and sees prompts."""

    pin: str | None
    pin_requests: int = 0
    prompts: list[str] = field(default_factory=list)

    def give_pin(self) -> str | None:
        self.pin_requests += 1
        return self.pin


class RelyingParty:
    """One `Fido2Server` for `rp_id`; each method runs one full ceremony."""

    def __init__(self, rp_id: str = RP_ID) -> None:
        self.server = Fido2Server(PublicKeyCredentialRpEntity(id=rp_id, name="Vouch"))

    def register(
        self,
        client: Fido2Client,
        user: PublicKeyCredentialUserEntity,
        *,
        uv: UserVerificationRequirement = REQUIRED,
        resident: bool = True,
        exclude: Sequence[AttestedCredentialData] = (),
    ) -> AuthenticatorData:
        """Register a credential; the returned auth data carries it (`credential_data`)."""
        rk = ResidentKeyRequirement.REQUIRED if resident else ResidentKeyRequirement.DISCOURAGED
        options, state = self.server.register_begin(
            user, list(exclude), resident_key_requirement=rk, user_verification=uv
        )
        response = client.make_credential(options.public_key)
        return self.server.register_complete(state, response)

    def login(
        self,
        client: Fido2Client,
        credentials: Sequence[AttestedCredentialData],
        *,
        uv: UserVerificationRequirement = REQUIRED,
        discoverable: bool = False,
        pick: int = 0,
    ) -> AuthenticationResponse:
        """Log in (usernameless when `discoverable`) and return the verified response."""
        allow = None if discoverable else list(credentials)
        options, state = self.server.authenticate_begin(allow, user_verification=uv)
        response = client.get_assertion(options.public_key).get_response(pick)
        self.server.authenticate_complete(state, list(credentials), response)
        return response


def credential_of(auth_data: AuthenticatorData) -> AttestedCredentialData:
    """The credential a registration created."""
    assert auth_data.credential_data is not None
    return auth_data.credential_data


def client_for(device: CtapDevice, human: Person) -> Fido2Client:
    """A client for `device` whose PIN requests and prompts go to `human`."""
    return make_client(device, ORIGIN, pin=human.give_pin, on_prompt=human.prompts.append)
