"""Fixtures: a fresh software key in tmp_path, driven by fido2's real client and server."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from fido2.client import Fido2Client
from vouch_delegate.authenticators import DEFAULT_PIN, SoftwareAuthenticator

from tests.unit.authenticators.relying_party import (
    Person,
    RecordingDevice,
    RelyingParty,
    client_for,
)


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "soft-key.json"


@pytest.fixture
def key(key_path: Path) -> SoftwareAuthenticator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SoftwareAuthenticator(key_path)


@pytest.fixture
def device(key: SoftwareAuthenticator) -> RecordingDevice:
    return RecordingDevice(key)


@pytest.fixture
def human() -> Person:
    return Person(pin=DEFAULT_PIN)


@pytest.fixture
def client(device: RecordingDevice, human: Person) -> Fido2Client:
    return client_for(device, human)


@pytest.fixture
def rp() -> RelyingParty:
    return RelyingParty()
