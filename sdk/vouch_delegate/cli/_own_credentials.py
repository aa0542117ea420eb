"""A person's own AWS credentials, kept on disk between `vouch credential aws` runs.

The AWS CLI runs `credential_process` once per command, so a burst of commands would
otherwise exchange each time (aws-vault keeps such a cache too). One file per broker and
person, `$XDG_CACHE_HOME/vouch/aws-<hash of broker and email>.json` (else ~/.cache/vouch/),
0600 in a 0700 directory, written whole or not at all (a temporary file renamed over it).
It holds one entry per kind of request (models, duration), each bound to the session it was
exchanged with (a SHA-256 of the session token, never the token): a new login exchanges
anew, and an entry is served only while more than a margin of its life is left (a third of
it, at most five minutes: the broker refreshes its own cache on the same rule, so what the
broker answers then is new). `vouch logout` deletes the file. A file that is not private or
not readable is ignored and replaced, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vouch_delegate.cli._store import write_private

MARGIN_S = 300.0
"""At most this much of an entry's life is left unused (see the module docstring)."""
VERSION = 1


def cache_dir(env: Mapping[str, str]) -> Path:
    """$XDG_CACHE_HOME/vouch, else ~/.cache/vouch (a relative XDG path is ignored)."""
    base = env.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "vouch"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Cached:
    """Credentials served from the cache: the credential_process document and the region."""

    document: dict[str, Any]
    region: str | None


class OwnCredentialCache:
    """The cache file of one person at one broker."""

    def __init__(self, directory: Path, server: str, email: str) -> None:
        self.server = server
        self.email = email
        self.path = directory / f"aws-{_digest(server, email)[:32]}.json"

    @classmethod
    def of(cls, env: Mapping[str, str], server: str, email: str) -> OwnCredentialCache:
        return cls(cache_dir(env), server, email)

    def get(
        self,
        session: str,
        models: Sequence[str] | None,
        duration_s: int | None,
        now: float,
    ) -> Cached | None:
        """The entry for this request and session, if it has more than its margin left."""
        entry = self._entries().get(_key(models, duration_s))
        if not isinstance(entry, dict) or entry.get("session") != _digest(session):
            return None
        try:
            fetched, ends = float(entry["fetched_at"]), float(entry["expires_at"])
            document = dict(entry["credentials"])
        except (KeyError, TypeError, ValueError):
            return None
        margin = min(MARGIN_S, max(0.0, ends - fetched) / 3)
        if not fetched <= now < ends - margin:
            return None
        region = entry.get("region")
        return Cached(document, region if isinstance(region, str) else None)

    def put(
        self,
        session: str,
        models: Sequence[str] | None,
        duration_s: int | None,
        *,
        document: Mapping[str, Any],
        region: str | None,
        fetched_at: float,
        expires_at: float,
    ) -> None:
        """Keep these credentials for this request; entries that ended are dropped.

        `expires_at` is by this host's clock (the document's Expiration is by the broker's).

        Raises: OSError when the directory or file cannot be written.
        """
        entries = {
            key: value for key, value in self._entries().items() if _alive(value, fetched_at)
        }
        entries[_key(models, duration_s)] = {
            "session": _digest(session),
            "fetched_at": fetched_at,
            "expires_at": expires_at,
            "region": region,
            "credentials": dict(document),
        }
        record = {"version": VERSION, "server": self.server, "email": self.email}
        write_private(self.path, json.dumps({**record, "entries": entries}, indent=2) + "\n")

    def clear(self) -> bool:
        """Delete the file (`vouch logout`); True when there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _entries(self) -> dict[str, Any]:
        """The file's entries; none when it is missing, unreadable, not ours or not private."""
        try:
            info = self.path.stat()
            if os.name == "posix" and (
                info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.getuid()
            ):
                return {}
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        with contextlib.suppress(AttributeError):
            if (data.get("server"), data.get("email")) == (self.server, self.email):
                entries = data.get("entries")
                return entries if isinstance(entries, dict) else {}
        return {}


def _key(models: Sequence[str] | None, duration_s: int | None) -> str:
    """One entry per kind of request: the models asked for (in any order) and the duration."""
    return json.dumps([sorted(models) if models else None, duration_s])


def _alive(entry: object, now: float) -> bool:
    """Whether a stored entry has not yet expired (a malformed one has)."""
    try:
        return isinstance(entry, dict) and float(entry["expires_at"]) > now
    except (KeyError, TypeError, ValueError):
        return False
