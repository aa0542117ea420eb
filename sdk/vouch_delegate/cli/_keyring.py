"""The OS keyring (through the `keyring` library), where the session token lives if there is one.

A person's session is a bearer secret that every process of theirs could read from a file;
in the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker) it is at least
out of reach of a process that only scans files. Headless machines have no usable keyring:
`keyring` then resolves to its `fail` (or `null`) backend, and the caller falls back to the
0600 session file. `keyring` is imported only when needed: it costs a tenth of a second.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "vouch"  # entries are (SERVICE, broker URL): one session per broker


class KeyringUnavailable(Exception):
    """The keyring refused or failed (locked, no collection, D-Bus gone)."""


def usable() -> KeyringBackend | None:
    """The backend `keyring` resolves to, or None when it has none that stores anything."""
    try:
        import keyring  # slow to import, and most commands never need it

        backend = keyring.get_keyring()
        priority = float(backend.priority)
    except Exception:  # a broken keyring setup is no keyring, not a crash
        return None
    # `fail` has priority 0, `null` -1, an empty chainer below 0: none of them stores.
    return backend if priority > 0 else None


def name(backend: KeyringBackend) -> str:
    """The backend as people read it ("SecretService Keyring")."""
    return str(type(backend).name)


def read(backend: KeyringBackend, server: str) -> str | None:
    """Raises: KeyringUnavailable."""
    try:
        return backend.get_password(SERVICE, server)
    except Exception as exc:  # keyring's errors, and whatever a backend's transport raises
        raise KeyringUnavailable(f"{name(backend)}: {exc}") from exc


def write(backend: KeyringBackend, server: str, token: str) -> None:
    """Raises: KeyringUnavailable."""
    try:
        backend.set_password(SERVICE, server, token)
    except Exception as exc:
        raise KeyringUnavailable(f"{name(backend)}: {exc}") from exc


def forget(server: str) -> None:
    """Delete the entry for `server`, if a usable keyring holds one (best effort)."""
    backend = usable()
    if backend is None:
        return
    # Absent already, or the keyring is gone: either way there is nothing left to delete.
    with contextlib.suppress(Exception):
        backend.delete_password(SERVICE, server)
