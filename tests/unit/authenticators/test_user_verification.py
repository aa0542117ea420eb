"""The PIN, the UV flag and the test hooks that make verification fail or go missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fido2.client import ClientError, Fido2Client, PinRequiredError
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocol, PinProtocolV1
from fido2.webauthn import AuthenticatorData
from vouch_delegate.authenticators import (
    DEFAULT_PIN,
    PinError,
    SoftwareAuthenticator,
    UserPresenceTimeout,
    from_client_error,
)

from tests.unit.authenticators.relying_party import (
    RP_ID,
    Person,
    RelyingParty,
    client_for,
    credential_of,
    person,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::vouch_delegate.authenticators.NotHardwareWarning"),
]

ERR = CtapError.ERR
FLAG = AuthenticatorData.FLAG
PERMISSION = ClientPin.PERMISSION


def _ctap_code(error: ClientError) -> CtapError.ERR:
    assert isinstance(error.cause, CtapError)
    return error.cause.code


def _retries(key: SoftwareAuthenticator) -> int:
    return ClientPin(Ctap2(key)).get_pin_retries()[0]


def test_wrong_pin_fails_the_ceremony_and_costs_a_retry(
    client: Fido2Client, rp: RelyingParty, human: Person, key: SoftwareAuthenticator
) -> None:
    assert _retries(key) == 8
    human.pin = "000000"
    with pytest.raises(ClientError) as caught:
        rp.register(client, person("alice"))
    assert _ctap_code(caught.value) == ERR.PIN_INVALID
    assert isinstance(from_client_error(caught.value), PinError)
    assert _retries(key) == 7

    human.pin = DEFAULT_PIN
    rp.register(client, person("alice"))
    assert _retries(key) == 8  # the right PIN restores the retries


def test_three_wrong_pins_block_until_the_key_is_reopened(
    rp: RelyingParty, human: Person, key: SoftwareAuthenticator, key_path: Path
) -> None:
    human.pin = "000000"
    codes = []
    for _ in range(4):
        with pytest.raises(ClientError) as caught:
            rp.register(client_for(key, human), person("alice"))
        codes.append(_ctap_code(caught.value))
    assert codes == [ERR.PIN_INVALID, ERR.PIN_INVALID, ERR.PIN_AUTH_BLOCKED, ERR.PIN_AUTH_BLOCKED]

    replugged = SoftwareAuthenticator(key_path)
    assert _retries(replugged) == 5  # retries are on disk; the block was per "power cycle"
    human.pin = DEFAULT_PIN
    assert rp.register(client_for(replugged, human), person("alice")).flags & FLAG.UV


def test_no_pin_given_is_a_pin_error(client: Fido2Client, rp: RelyingParty, human: Person) -> None:
    human.pin = None
    with pytest.raises(PinRequiredError) as caught:
        rp.register(client, person("alice"))
    assert isinstance(from_client_error(caught.value), PinError)


def test_key_without_pin_cannot_do_required_uv_until_one_is_set(
    tmp_path: Path, rp: RelyingParty, human: Person
) -> None:
    key = SoftwareAuthenticator(tmp_path / "blank.json", pin=None)
    with pytest.raises(ClientError) as caught:
        rp.register(client_for(key, human), person("alice"))
    assert caught.value.code == ClientError.ERR.CONFIGURATION_UNSUPPORTED

    ClientPin(Ctap2(key)).set_pin("4711-pin")
    human.pin = "4711-pin"
    assert rp.register(client_for(key, human), person("alice")).flags & FLAG.UV
    with pytest.raises(CtapError) as refused:
        ClientPin(Ctap2(key)).set_pin("another")  # a set PIN can only be changed
    assert refused.value.code == ERR.NOT_ALLOWED


def test_uv_mode_fail_makes_the_ceremony_fail(
    client: Fido2Client, rp: RelyingParty, key: SoftwareAuthenticator
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    key.uv_mode = "fail"
    with pytest.raises(ClientError) as caught:
        rp.login(client, [credential])
    assert _ctap_code(caught.value) == ERR.PIN_AUTH_INVALID
    assert _retries(key) == 8  # the PIN itself was right


def test_uv_mode_skip_omits_the_uv_flag_and_the_server_rejects_it(
    client: Fido2Client, rp: RelyingParty, key: SoftwareAuthenticator
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    key.uv_mode = "skip"
    with pytest.raises(ValueError, match="User verification required"):
        rp.login(client, [credential])
    with pytest.raises(ValueError, match="User verification required"):
        rp.register(client, person("bob"))


def test_declined_touch_times_out(
    client: Fido2Client, rp: RelyingParty, key: SoftwareAuthenticator, human: Person
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    key.user_present = False
    with pytest.raises(ClientError) as caught:
        rp.login(client, [credential])
    assert caught.value.code == ClientError.ERR.TIMEOUT
    assert isinstance(from_client_error(caught.value), UserPresenceTimeout)
    assert human.prompts[-1] == "Touch your security key"


def test_pin_token_authorises_one_touched_ceremony(key: SoftwareAuthenticator) -> None:
    ctap = Ctap2(key)
    pin = ClientPin(ctap)
    token = pin.get_pin_token(DEFAULT_PIN, PERMISSION.MAKE_CREDENTIAL, RP_ID)

    def make(rp_id: str) -> AuthenticatorData:
        digest = bytes(32)
        return ctap.make_credential(
            digest,
            {"id": rp_id, "name": rp_id},
            {"id": b"user-alice", "name": "alice"},
            [{"type": "public-key", "alg": -7}],
            pin_uv_param=pin.protocol.authenticate(token, digest),
            pin_uv_protocol=pin.protocol.VERSION,
        ).auth_data

    with pytest.raises(CtapError) as other_rp:
        make("evil.example.com")  # the token is bound to RP_ID
    assert other_rp.value.code == ERR.PIN_AUTH_INVALID
    assert make(RP_ID).flags & FLAG.UV
    with pytest.raises(CtapError) as replayed:
        make(RP_ID)
    assert replayed.value.code == ERR.PIN_AUTH_INVALID


def test_pin_protocol_1_also_verifies_the_user(key: SoftwareAuthenticator) -> None:
    ctap = Ctap2(key)
    protocol: PinProtocol = PinProtocolV1()
    token = ClientPin(ctap, protocol).get_pin_token(DEFAULT_PIN, PERMISSION.GET_ASSERTION)
    with pytest.raises(CtapError) as none_yet:
        ctap.get_assertion(
            RP_ID,
            bytes(32),
            pin_uv_param=protocol.authenticate(token, bytes(32)),
            pin_uv_protocol=1,
        )
    assert none_yet.value.code == ERR.NO_CREDENTIALS  # the PIN check passed; the key is empty
    with pytest.raises(CtapError) as wrong_mac:
        ctap.get_assertion(RP_ID, bytes(32), pin_uv_param=bytes(16), pin_uv_protocol=1)
    assert wrong_mac.value.code == ERR.PIN_AUTH_INVALID
