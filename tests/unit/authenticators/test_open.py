"""`open_authenticator` specs and the client `make_client` builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from fido2.client import Fido2Client
from fido2.hid import CtapHidDevice
from fido2.webauthn import AuthenticatorData
from vouch_delegate.authenticators import (
    DEFAULT_PIN,
    TOUCH_PROMPT,
    AuthenticatorError,
    AuthenticatorSpecError,
    NoAuthenticator,
    SoftwareAuthenticator,
    make_client,
    open_authenticator,
)

from tests.unit.authenticators.relying_party import RelyingParty, person

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::vouch_delegate.authenticators.NotHardwareWarning"),
]


def _usb_key_present() -> bool:
    try:
        return next(CtapHidDevice.list_devices(), None) is not None
    except OSError:
        return True  # a key is there but cannot be opened: the message differs


def test_usb_opens_the_plugged_in_key_or_says_there_is_none() -> None:
    # CI machines have no USB key, so there this is the NoAuthenticator path, for real; on a
    # developer's machine with a key plugged in, the same call must open that key.
    if _usb_key_present():
        assert isinstance(open_authenticator("usb"), CtapHidDevice)
        return
    with pytest.raises(NoAuthenticator, match="no FIDO2 security key found on USB") as caught:
        open_authenticator("usb")
    assert isinstance(caught.value, AuthenticatorError)
    assert "soft:PATH" in str(caught.value)


def test_soft_spec_opens_a_software_authenticator(tmp_path: Path) -> None:
    device = open_authenticator(f"soft:{tmp_path}/key.json")
    assert isinstance(device, SoftwareAuthenticator)
    assert device.path == tmp_path / "key.json"
    assert device.path.is_file()


def test_soft_spec_expands_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    device = open_authenticator("soft:~/.vouch/key.json")
    assert isinstance(device, SoftwareAuthenticator)
    assert device.path == tmp_path / ".vouch" / "key.json"


@pytest.mark.parametrize("spec", ["", "soft:", "soft", "USB", "hid:/dev/hidraw0", "usb:0"])
def test_unknown_specs_are_rejected(spec: str) -> None:
    with pytest.raises(AuthenticatorSpecError, match="use 'usb' or 'soft:PATH'"):
        open_authenticator(spec)


def test_make_client_routes_pin_and_touch_through_callbacks(
    tmp_path: Path, rp: RelyingParty
) -> None:
    events: list[str] = []

    def ask_pin() -> str:
        events.append("pin")
        return DEFAULT_PIN

    device = open_authenticator(f"soft:{tmp_path}/key.json")
    client = make_client(device, "https://vouch.example.com", pin=ask_pin, on_prompt=events.append)
    assert isinstance(client, Fido2Client)
    rp.register(client, person("alice"))
    assert events == ["pin", TOUCH_PROMPT]


def test_make_client_for_localhost_origin(tmp_path: Path) -> None:
    device = open_authenticator(f"soft:{tmp_path}/key.json")
    prompts: list[str] = []
    client = make_client(
        device, "http://localhost:8000", pin=lambda: DEFAULT_PIN, on_prompt=prompts.append
    )
    registered = RelyingParty(rp_id="localhost").register(client, person("alice"))
    assert registered.flags & AuthenticatorData.FLAG.UV
    assert prompts == [TOUCH_PROMPT]
