"""The person's saved session: server, email and expiry in a 0600 file, the token in the
OS keyring when there is a usable one, else in that file.

The file lives at $XDG_CONFIG_HOME/vouch/session.json (else ~/.config/vouch/session.json).
It is replaced atomically, so a crash never leaves half a token, and its permissions are
checked on every read. A session cannot delegate or add power without a key tap, but it
lists and revokes for eight hours, so the token stays out of plain files where it can.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vouch_delegate._directories import make_private_dirs
from vouch_delegate._errors import ConfigError
from vouch_delegate._secrets import masked_repr
from vouch_delegate.cli import _keyring

EXPIRY_SLACK_S = 30  # a token this close to expiry would die in flight
KEYRING, FILE = "keyring", "file"  # where a session's token is kept


@dataclass(frozen=True)
class SavedSession:
    server: str
    email: str | None = None
    token: str | None = None
    expires_at: int | None = None
    signed_out_at: int | None = None
    """When `vouch logout` ended the session (so `vouch status` can say so)."""
    kept_in: str = FILE  # KEYRING or FILE: where the token is (or was) kept

    __repr__ = masked_repr("token")

    def signed_in(self, now: float | None = None, *, token_known: bool = False) -> bool:
        """Whether the session is usable until `now` (with `token_known`, judged by its
        expiry alone, as when its token is in a keyring that cannot be read)."""
        moment = time.time() if now is None else now
        has_token = bool(self.token) or token_known
        return has_token and (self.expires_at or 0) > moment + EXPIRY_SLACK_S

    def without_token(self) -> SavedSession:
        return replace(self, token=None, expires_at=None)

    def signed_out(self, now: float | None = None) -> SavedSession:
        """Without the token, remembering when it was signed out."""
        moment = int(time.time() if now is None else now)
        return replace(self.without_token(), signed_out_at=moment)


def config_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "vouch"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600 (missing directories created 0700)."""
    make_private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # mkstemp already uses 0600; say so for the reader and Windows
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SessionStore:
    """Load and save the one saved session."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SessionStore:
        return cls(config_dir(env) / "session.json")

    def load(self) -> SavedSession | None:
        """The saved session; its token is None if the keyring holding it cannot be read.

        Raises: ConfigError when the file is open to others or unreadable.
        """
        data = self._read()
        if data is None:
            return None
        try:
            session = SavedSession(
                server=str(data["server"]),
                email=data.get("email"),
                token=data.get("token"),
                expires_at=data.get("expires_at"),
                signed_out_at=data.get("signed_out_at"),
                kept_in=KEYRING if data.get("token_store") == KEYRING else FILE,
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read {self.path} ({exc}); delete it and log in") from None
        if session.kept_in == KEYRING:
            backend = _keyring.usable()
            try:
                token = _keyring.read(backend, session.server) if backend else None
            except _keyring.KeyringUnavailable:
                token = None
            session = replace(session, token=token)
        return session

    def save(self, session: SavedSession) -> SavedSession:
        """Save `session`: its token in the OS keyring if one is usable, else in the file.

        Returns it with `kept_in` saying where the token went. A keyring entry the new
        session no longer uses is deleted.
        """
        previous = self._previous_keyring_server()
        kept_in = FILE
        if session.token:
            backend = _keyring.usable()
            try:
                if backend is not None:
                    _keyring.write(backend, session.server, session.token)
                    kept_in = KEYRING
            except _keyring.KeyringUnavailable:
                kept_in = FILE  # a locked or broken keyring: the file, as on a headless host
        record = {k: v for k, v in asdict(session).items() if k != "kept_in"}
        if kept_in == KEYRING:
            del record["token"]
        write_private(self.path, json.dumps({**record, "token_store": kept_in}, indent=2) + "\n")
        if previous is not None and (kept_in == FILE or previous != session.server):
            _keyring.forget(previous)
        return replace(session, kept_in=kept_in)

    def _read(self) -> dict[str, Any] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{self.path} is accessible to group or others; run: chmod 600")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.path} ({exc}); delete it and log in") from None
        if not isinstance(data, dict):
            raise ConfigError(f"cannot read {self.path} (not an object); delete it and log in")
        return data

    def _previous_keyring_server(self) -> str | None:
        """The server whose token the file now says is in the keyring, if any."""
        try:
            data = self._read()
        except ConfigError:
            return None
        if data is None or data.get("token_store") != KEYRING:
            return None
        return str(data.get("server"))
