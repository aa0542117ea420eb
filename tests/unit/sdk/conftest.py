"""Every SDK unit test starts with keyring's `fail` backend, what it resolves to on a
headless machine, so no test reaches a developer's real keyring by accident; tests of
the keyring path install their own backend through keyring's API."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest
from keyring.backends import fail


@pytest.fixture(autouse=True)
def headless_keyring() -> Iterator[None]:
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(fail.Keyring())
