"""The key file: 0600, refused when exposed, durable across reopen, cloneable, PIN-free."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from fido2.client import Fido2Client
from vouch_delegate.authenticators import (
    NOT_HARDWARE_WARNING,
    KeyFileError,
    NotHardwareWarning,
    SoftwareAuthenticator,
)

from tests.unit.authenticators.relying_party import (
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


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_created_0600_in_a_0700_directory(
    key: SoftwareAuthenticator, key_path: Path
) -> None:
    assert key.path == key_path
    assert _mode(key_path) == 0o600
    assert _mode(key_path.parent) == 0o700
    assert json.loads(key_path.read_text())["format"] == "vouch-soft-authenticator/1"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_file_reachable_by_others_is_refused(
    key: SoftwareAuthenticator, key_path: Path, mode: int
) -> None:
    key_path.chmod(mode)
    with pytest.raises(KeyFileError, match=rf"mode 0{mode:o}.*chmod 600"):
        SoftwareAuthenticator(key_path)


def test_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.json"
    path.write_text('{"format": "vouch-soft-authenticator/1", "counter": 3}')
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="is corrupt"):
        SoftwareAuthenticator(path)


def test_directory_as_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a regular file"):
        SoftwareAuthenticator(tmp_path)


def test_opening_warns_that_it_is_not_hardware(tmp_path: Path) -> None:
    with pytest.warns(NotHardwareWarning, match="NOT a hardware security key") as record:
        SoftwareAuthenticator(tmp_path / "k.json")
    assert str(record[0].message).startswith(NOT_HARDWARE_WARNING)
    assert record[0].filename == __file__  # points at the caller, not at the library


def test_state_survives_reopen(
    client: Fido2Client, rp: RelyingParty, key_path: Path, human: Person
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    before = rp.login(client, [credential]).response.authenticator_data.counter

    reopened = client_for(SoftwareAuthenticator(key_path, pin="ignored-for-existing"), human)
    after = rp.login(reopened, [credential], discoverable=True)
    assert after.raw_id == credential.credential_id
    assert after.response.authenticator_data.counter == before + 1
    assert human.pin_requests == 3  # the file's PIN held; the constructor's was ignored


def test_key_file_never_holds_the_pin(tmp_path: Path, rp: RelyingParty) -> None:
    pin = "Vouch-PIN-4821"
    path = tmp_path / "k.json"
    key = SoftwareAuthenticator(path, pin=pin)
    rp.register(client_for(key, Person(pin=pin)), person("alice"))
    text = path.read_text()
    pin_hash = hashlib.sha256(pin.encode()).digest()[:16]
    encodings = [pin, pin_hash.hex(), base64.b64encode(pin_hash).decode().rstrip("=")]
    encodings.append(base64.urlsafe_b64encode(pin_hash).decode().rstrip("="))
    assert [e for e in encodings if e in text] == []
    assert json.loads(text)["pin"]["retries"] == 8


def test_writes_leave_no_temporary_files(
    client: Fido2Client, rp: RelyingParty, key_path: Path
) -> None:
    rp.register(client, person("alice"))
    assert [p.name for p in key_path.parent.iterdir()] == [key_path.name]


def test_a_clone_falls_behind_and_its_stale_counter_is_visible(
    client: Fido2Client,
    rp: RelyingParty,
    key: SoftwareAuthenticator,
    tmp_path: Path,
    human: Person,
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    clone = key.clone_to(tmp_path / "clone.json")
    assert _mode(clone.path) == 0o600

    seen = [rp.login(client, [credential]).response.authenticator_data.counter for _ in range(2)]
    assert seen[1] > seen[0]
    stolen = rp.login(client_for(clone, human), [credential])  # same key material: it verifies
    assert stolen.raw_id == credential.credential_id
    assert stolen.response.authenticator_data.counter <= seen[-1]


def test_clone_refuses_to_overwrite(key: SoftwareAuthenticator, tmp_path: Path) -> None:
    existing = tmp_path / "taken.json"
    existing.write_text("precious")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        key.clone_to(existing)
    assert existing.read_text() == "precious"


def test_two_instances_taking_turns_keep_one_rising_counter(
    client: Fido2Client, rp: RelyingParty, key_path: Path, human: Person
) -> None:
    credential = credential_of(rp.register(client, person("alice")))
    other = client_for(SoftwareAuthenticator(key_path), human)  # e.g. the CLI in a subprocess
    counters = [
        rp.login(c, [credential]).response.authenticator_data.counter
        for c in (client, other, client, other)
    ]
    assert counters == sorted(set(counters))
    assert json.loads(key_path.read_text())["counter"] == counters[-1]


def test_invalid_settings_are_refused_before_a_file_exists(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    with pytest.raises(ValueError, match="uv_mode must be one of"):
        SoftwareAuthenticator(path, uv_mode="off")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a PIN has 4 to 63 bytes"):
        SoftwareAuthenticator(path, pin="123")
    assert not path.exists()


def test_key_file_directories_are_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "home" / ".config" / "vouch" / "key.json"
    previous = os.umask(0)
    try:
        SoftwareAuthenticator(path)
    finally:
        os.umask(previous)
    modes = {p.name: _mode(p) for p in (path.parent.parent.parent, path.parent.parent, path.parent)}
    assert modes == {"home": 0o700, ".config": 0o700, "vouch": 0o700}
    assert _mode(path) == 0o600
