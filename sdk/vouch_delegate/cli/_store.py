"""The person's saved session: server, email, session token and expiry, in one 0600 file.

It lives at $XDG_CONFIG_HOME/vouch/session.json (else ~/.config/vouch/session.json). The
file is replaced atomically, so a crash never leaves half a token, and its permissions
are checked on every read: a session token is as good as a key tap for eight hours.
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

from vouch_delegate._directories import make_private_dirs
from vouch_delegate._errors import ConfigError
from vouch_delegate._secrets import masked_repr

EXPIRY_SLACK_S = 30  # a token this close to expiry would die in flight


@dataclass(frozen=True)
class SavedSession:
    server: str
    email: str | None = None
    token: str | None = None
    expires_at: int | None = None

    __repr__ = masked_repr("token")

    def signed_in(self, now: float | None = None) -> bool:
        moment = time.time() if now is None else now
        return bool(self.token) and (self.expires_at or 0) > moment + EXPIRY_SLACK_S

    def without_token(self) -> SavedSession:
        return replace(self, token=None, expires_at=None)


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
        """Raises: ConfigError when the file is open to others or unreadable."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{self.path} is accessible to group or others; run: chmod 600")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return SavedSession(
                server=str(data["server"]),
                email=data.get("email"),
                token=data.get("token"),
                expires_at=data.get("expires_at"),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read {self.path} ({exc}); delete it and log in") from None

    def save(self, session: SavedSession) -> None:
        write_private(self.path, json.dumps(asdict(session), indent=2) + "\n")
