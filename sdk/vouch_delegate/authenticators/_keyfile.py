"""The software authenticator's key file: its JSON shape, permission check and atomic writes.

A software key has nowhere safer than this file for its private keys, so they sit in it
in the clear and the file's 0600 mode is their only protection. Like ssh with a private
key, we refuse a key file that group or others can read or write.

The PIN is stored as scrypt(LEFT(SHA-256(pin), 16), salt, N=2^14, r=8, p=1) (`_pin.py`):
about 40-50 ms per guess on one core, so whoever reads the file tries every six-digit PIN in
about 11-14 core-hours. A PIN reused from a hardware key is therefore not protected here.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .._directories import make_private_dirs
from .errors import KeyFileError

FORMAT = "vouch-soft-authenticator/1"
_BANNER = "Software FIDO2 authenticator for tests and demos. NOT hardware: keys are in the clear."


@dataclass
class Credential:
    """One credential the authenticator holds, discoverable (resident) or not."""

    credential_id: bytes
    rp_id: str
    user_id: bytes
    user_name: str | None
    display_name: str | None
    discoverable: bool
    private_key: ec.EllipticCurvePrivateKey
    created: int  # creation order: discoverable logins offer the newest account first


@dataclass
class PinState:
    """A salted scrypt digest of LEFT(SHA-256(PIN), 16) and the retries left."""

    salt: bytes
    digest: bytes
    retries: int


@dataclass
class KeyState:
    """Everything that must survive a restart of the software authenticator."""

    aaguid: bytes
    counter: int = 0
    pin: PinState | None = None
    credentials: list[Credential] = field(default_factory=list)


def load(path: Path) -> KeyState | None:
    """The state in `path`, or None when there is no file yet.

    Raises:
        KeyFileError: the file is reachable by group/others, unreadable or corrupt.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror}") from exc
    try:
        # Checked on the open descriptor, so the file cannot be swapped after the check.
        _check_private(path, os.fstat(fd))
        raw = _read_all(fd)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    try:
        return _decode(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(
            f"key file {path} is corrupt ({exc!r}); delete it to start over"
        ) from exc


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def fingerprint(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever anyone saves `path` (each save is a new inode), or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _check_private(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {mode:04o}, so other users can reach its private "
            f"keys; refusing to use it. Run `chmod 600 {path}` if it was not exposed, "
            "otherwise delete it and register a new key."
        )


def save(path: Path, state: KeyState) -> None:
    """Replace `path` with `state` atomically, so a crash never leaves a torn file.

    Raises:
        KeyFileError: the file or its directory cannot be written.
    """
    try:
        make_private_dirs(path.parent)
        # mkstemp creates the file 0600, so the keys are never readable by others.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(json.dumps(_encode(state), indent=2).encode())
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _sync_directory(path.parent)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc


def _sync_directory(directory: Path) -> None:
    # A lost rename after a crash would roll the signature counter back, which the
    # broker reads as a cloned key; syncing the directory makes the rename durable.
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode(state: KeyState) -> dict[str, Any]:
    pin = state.pin
    return {
        "format": FORMAT,
        "warning": _BANNER,
        "aaguid": state.aaguid.hex(),
        "counter": state.counter,
        "pin": None
        if pin is None
        else {"salt": _b64(pin.salt), "scrypt": _b64(pin.digest), "retries": pin.retries},
        "credentials": [_encode_credential(c) for c in state.credentials],
    }


def _encode_credential(cred: Credential) -> dict[str, Any]:
    der = cred.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "id": _b64(cred.credential_id),
        "rp_id": cred.rp_id,
        "user_id": _b64(cred.user_id),
        "user_name": cred.user_name,
        "display_name": cred.display_name,
        "discoverable": cred.discoverable,
        "created": cred.created,
        "private_key": _b64(der),
    }


def _decode(doc: dict[str, Any]) -> KeyState:
    if doc.get("format") != FORMAT:
        raise ValueError(f"unknown format {doc.get('format')!r}, expected {FORMAT!r}")
    pin = doc["pin"]
    return KeyState(
        aaguid=bytes.fromhex(doc["aaguid"]),
        counter=int(doc["counter"]),
        pin=None
        if pin is None
        else PinState(_unb64(pin["salt"]), _unb64(pin["scrypt"]), int(pin["retries"])),
        credentials=[_decode_credential(c) for c in doc["credentials"]],
    )


def _decode_credential(doc: dict[str, Any]) -> Credential:
    key = serialization.load_der_private_key(_unb64(doc["private_key"]), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("credential key is not an EC private key")
    return Credential(
        credential_id=_unb64(doc["id"]),
        rp_id=str(doc["rp_id"]),
        user_id=_unb64(doc["user_id"]),
        user_name=doc["user_name"],
        display_name=doc["display_name"],
        discoverable=bool(doc["discoverable"]),
        private_key=key,
        created=int(doc["created"]),
    )
