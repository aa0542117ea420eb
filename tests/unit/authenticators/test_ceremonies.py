"""Registration and login through fido2's real Fido2Client against its real Fido2Server."""

from __future__ import annotations

from pathlib import Path

import pytest
from fido2.client import ClientError, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.pin import ClientPin
from fido2.webauthn import AuthenticatorData
from vouch_delegate.authenticators import (
    SOFTWARE_AAGUID,
    TOUCH_PROMPT,
    CredentialExcluded,
    NoCredential,
    SoftwareAuthenticator,
    from_client_error,
)

from tests.unit.authenticators.relying_party import (
    DISCOURAGED,
    Person,
    RecordingDevice,
    RelyingParty,
    client_for,
    credential_of,
    person,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::vouch_delegate.authenticators.NotHardwareWarning"),
]

FLAG = AuthenticatorData.FLAG
CMD = Ctap2.CMD


def test_get_info_describes_a_pin_protected_ctap21_key(client: Fido2Client) -> None:
    info = client.info
    assert info.versions == ["FIDO_2_0", "FIDO_2_1"]
    assert info.aaguid == SOFTWARE_AAGUID
    assert info.options == {
        "rk": True,
        "up": True,
        "plat": False,
        "clientPin": True,
        "pinUvAuthToken": True,
    }
    assert info.pin_uv_protocols == [2, 1]
    assert info.algorithms == [{"alg": -7, "type": "public-key"}]


def test_register_and_login_with_required_uv_use_pin_protocol_2(
    client: Fido2Client, rp: RelyingParty, device: RecordingDevice, human: Person
) -> None:
    registered = rp.register(client, person("alice"))
    assert registered.flags == FLAG.UP | FLAG.UV | FLAG.AT
    credential = credential_of(registered)
    assert credential.aaguid == SOFTWARE_AAGUID
    assert credential.public_key.ALGORITHM == -7

    login = rp.login(client, [credential])
    assert login.raw_id == credential.credential_id
    assert login.response.authenticator_data.flags == FLAG.UP | FLAG.UV
    assert login.response.authenticator_data.counter > registered.counter

    token_requests = [
        p for p in device.sent(CMD.CLIENT_PIN) if p[2] == ClientPin.CMD.GET_TOKEN_USING_PIN
    ]
    assert [p[1] for p in token_requests] == [2, 2]  # PIN/UV auth protocol 2, once each
    assert [p[9] for p in device.sent(CMD.MAKE_CREDENTIAL)] == [2]
    assert human.pin_requests == 2
    assert human.prompts == [TOUCH_PROMPT, TOUCH_PROMPT]


def test_login_without_uv_sets_only_user_presence(
    client: Fido2Client, rp: RelyingParty, human: Person
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    login = rp.login(client, [credential], uv=DISCOURAGED)
    assert login.response.authenticator_data.flags == FLAG.UP
    assert human.pin_requests == 1  # only registration needed the PIN


def test_discoverable_login_returns_the_user_handle(
    client: Fido2Client, rp: RelyingParty, device: RecordingDevice
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    login = rp.login(client, [credential], discoverable=True)
    assert login.response.user_handle == b"user-alice"
    assert login.raw_id == credential.credential_id
    assert 3 not in device.sent(CMD.GET_ASSERTION)[-1]  # no allowList was sent


def test_two_accounts_on_one_rp_come_back_newest_first(
    client: Fido2Client, rp: RelyingParty, device: RecordingDevice
) -> None:
    alice = credential_of(rp.register(client, person("alice")))
    bob = credential_of(rp.register(client, person("bob")))
    assert alice.credential_id != bob.credential_id

    options, _ = rp.server.authenticate_begin(None)
    assertions = client.get_assertion(options.public_key).get_assertions()
    assert [a.credential["id"] for a in assertions] == [bob.credential_id, alice.credential_id]
    assert [a.user["name"] for a in assertions if a.user] == [
        "bob@example.com",
        "alice@example.com",
    ]
    assert assertions[0].number_of_credentials == 2
    assert len(device.sent(CMD.GET_NEXT_ASSERTION)) == 1

    second = rp.login(client, [alice, bob], discoverable=True, pick=1)
    assert second.raw_id == alice.credential_id
    assert second.response.user_handle == b"user-alice"


def test_non_resident_credential_logs_in_by_allow_list_only(
    client: Fido2Client, rp: RelyingParty
) -> None:
    credential = credential_of(rp.register(client, person("alice"), resident=False))
    assert rp.login(client, [credential]).raw_id == credential.credential_id
    with pytest.raises(ClientError) as caught:
        rp.login(client, [credential], discoverable=True)
    assert caught.value.code == ClientError.ERR.DEVICE_INELIGIBLE
    assert isinstance(from_client_error(caught.value), NoCredential)


def test_exclude_list_refuses_a_second_registration_of_the_same_key(
    client: Fido2Client, rp: RelyingParty
) -> None:
    first = credential_of(rp.register(client, person("alice")))
    with pytest.raises(ClientError) as caught:
        rp.register(client, person("alice"), exclude=[first])
    assert caught.value.code == ClientError.ERR.DEVICE_INELIGIBLE
    assert isinstance(caught.value.cause, CtapError)
    assert caught.value.cause.code == CtapError.ERR.CREDENTIAL_EXCLUDED
    assert isinstance(from_client_error(caught.value), CredentialExcluded)


def test_exclude_list_does_not_block_a_different_key(
    client: Fido2Client, rp: RelyingParty, tmp_path: Path, human: Person
) -> None:
    first = credential_of(rp.register(client, person("alice")))
    other = SoftwareAuthenticator(tmp_path / "other-key.json")
    second = credential_of(rp.register(client_for(other, human), person("alice"), exclude=[first]))
    assert second.credential_id != first.credential_id


def test_allow_list_of_another_key_finds_no_credential(
    client: Fido2Client, rp: RelyingParty, tmp_path: Path, human: Person
) -> None:
    other = SoftwareAuthenticator(tmp_path / "other-key.json")
    foreign = credential_of(rp.register(client_for(other, human), person("alice")))
    with pytest.raises(ClientError) as caught:
        rp.login(client, [foreign])
    assert isinstance(caught.value.cause, CtapError)
    assert caught.value.cause.code == CtapError.ERR.NO_CREDENTIALS


def test_registering_an_account_again_replaces_its_resident_credential(
    client: Fido2Client, rp: RelyingParty
) -> None:
    old = credential_of(rp.register(client, person("alice")))
    new = credential_of(rp.register(client, person("alice")))
    options, _ = rp.server.authenticate_begin(None)
    assertions = client.get_assertion(options.public_key).get_assertions()
    assert [a.credential["id"] for a in assertions] == [new.credential_id]
    with pytest.raises(ClientError):
        rp.login(client, [old])  # the old credential is gone from the key
