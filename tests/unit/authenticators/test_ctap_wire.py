"""CTAP2 framing and parameter checks: malformed input gets a status code, never a crash."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from threading import Event
from typing import Any

import pytest
from fido2 import cbor
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.hid import CTAPHID
from vouch_delegate.authenticators import SoftwareAuthenticator

from tests.unit.authenticators.relying_party import RP_ID

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::vouch_delegate.authenticators.NotHardwareWarning"),
]

ERR = CtapError.ERR
CMD = Ctap2.CMD
ES256: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -7}]
RP = {"id": RP_ID, "name": "Vouch"}
USER = {"id": b"user-alice", "name": "alice"}


def _status(key: SoftwareAuthenticator, payload: bytes) -> int:
    return key.call(CTAPHID.CBOR, payload)[0]


def _code(call: Any, *args: Any, **kwargs: Any) -> CtapError.ERR:
    with pytest.raises(CtapError) as caught:
        call(*args, **kwargs)
    return caught.value.code


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"", ERR.INVALID_LENGTH),
        (bytes([CMD.MAKE_CREDENTIAL, 0xA1]), ERR.INVALID_CBOR),  # map with no entries
        (bytes([CMD.MAKE_CREDENTIAL]) + cbor.encode([1, 2]), ERR.CBOR_UNEXPECTED_TYPE),
        (bytes([CMD.MAKE_CREDENTIAL]) + cbor.encode({1: b"x"}), ERR.MISSING_PARAMETER),
        (bytes([CMD.GET_ASSERTION]) + cbor.encode({1: 5, 2: bytes(32)}), ERR.CBOR_UNEXPECTED_TYPE),
        (bytes([0x55]), ERR.INVALID_COMMAND),
        (bytes([CMD.GET_NEXT_ASSERTION]), ERR.NOT_ALLOWED),
        (bytes([CMD.CLIENT_PIN]) + cbor.encode({1: 3, 2: 1}), ERR.INVALID_PARAMETER),
        (bytes([CMD.CLIENT_PIN]) + cbor.encode({1: 2, 2: 0x0F}), ERR.INVALID_SUBCOMMAND),
    ],
)
def test_malformed_requests_get_the_specified_status(
    key: SoftwareAuthenticator, payload: bytes, status: int
) -> None:
    assert _status(key, payload) == status


def test_ctaphid_level_commands(key: SoftwareAuthenticator) -> None:
    assert key.call(CTAPHID.PING, b"echo") == b"echo"
    with pytest.raises(CtapError) as caught:
        key.call(CTAPHID.MSG, b"\x00\x01")  # no CTAP1/U2F to fall back to
    assert caught.value.code == ERR.INVALID_COMMAND


def test_make_credential_checks_options_algorithms_and_pin(key: SoftwareAuthenticator) -> None:
    ctap = Ctap2(key)
    eddsa: list[Mapping[str, Any]] = [{"type": "public-key", "alg": -8}]
    digest = bytes(32)
    assert _code(ctap.make_credential, digest, RP, USER, eddsa) == ERR.UNSUPPORTED_ALGORITHM
    uv = {"uv": True}
    assert _code(ctap.make_credential, digest, RP, USER, ES256, options=uv) == ERR.INVALID_OPTION
    no_up = {"up": False}
    assert _code(ctap.make_credential, digest, RP, USER, ES256, options=no_up) == ERR.INVALID_OPTION
    # A PIN is set, and makeCredential without its token is refused (no makeCredUvNotRqd).
    assert _code(ctap.make_credential, digest, RP, USER, ES256) == ERR.PUAT_REQUIRED
    empty = {"pin_uv_param": b"", "pin_uv_protocol": 2}
    assert _code(ctap.make_credential, digest, RP, USER, ES256, **empty) == ERR.PIN_INVALID


def test_get_assertion_rejects_rk_and_uv_options(key: SoftwareAuthenticator) -> None:
    ctap = Ctap2(key)
    rk = {"rk": True}
    assert _code(ctap.get_assertion, RP_ID, bytes(32), options=rk) == ERR.UNSUPPORTED_OPTION
    uv = {"uv": True}
    assert _code(ctap.get_assertion, RP_ID, bytes(32), options=uv) == ERR.INVALID_OPTION


def test_get_next_assertion_must_follow_directly(tmp_path: Path) -> None:
    key = SoftwareAuthenticator(tmp_path / "k.json", pin=None)  # no PIN: no token needed
    ctap = Ctap2(key)
    for user_id in (b"a", b"b", b"c"):
        ctap.make_credential(bytes(32), RP, {"id": user_id}, ES256, options={"rk": True})
    first = ctap.get_assertion(RP_ID, bytes(32))
    assert first.number_of_credentials == 3
    assert first.user == {"id": b"c"}  # no names without user verification
    assert ctap.get_next_assertion().user == {"id": b"b"}
    ctap.get_info()
    assert _code(ctap.get_next_assertion) == ERR.NOT_ALLOWED


def test_a_cancelled_request_stops_at_the_touch(key: SoftwareAuthenticator) -> None:
    cancelled = Event()
    cancelled.set()
    ctap = Ctap2(key)
    assert _code(ctap.selection, event=cancelled) == ERR.KEEPALIVE_CANCEL
    ctap.selection()  # without cancelling, the simulated touch succeeds
