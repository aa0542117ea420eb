"""Where `vouch delegate --out` puts the agent token: made ready before the tap, written after.

A tap cannot be taken back, so everything that can be checked about the destination is
checked first: its directory exists, it is not a directory itself, this user may replace
it (a file of another user in a sticky directory such as /tmp may not be), and a private
temporary file can be created beside it. The token is then written to that file and
renamed into place, never through a symlink planted at the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from vouch_delegate._errors import ConfigError


class TokenOut:
    """A destination checked before the tap, with its temporary file already open (0600)."""

    def __init__(self, path: Path, fd: int, temporary: Path) -> None:
        self.path = path
        self._fd: int | None = fd
        self._temporary = temporary

    @classmethod
    def prepare(cls, path: Path, *, uid: int | None = None) -> TokenOut:
        """Check `path` for a token written by `uid` (default: this process's user).

        Raises:
            ConfigError: the token could not be put there; nothing was created.
        """
        directory = path.parent
        if not directory.is_dir():
            raise ConfigError(f"--out: no such directory for {path}")
        try:
            present: os.stat_result | None = path.lstat()
        except FileNotFoundError:
            present = None
        if present is not None and stat.S_ISDIR(present.st_mode):
            raise ConfigError(f"--out: {path} is a directory")
        user = os.geteuid() if uid is None else uid
        if present is not None and not _may_replace(directory.stat(), present, user):
            raise ConfigError(
                f"--out: {path} belongs to another user (uid {present.st_uid}) in a shared "
                "sticky directory, so it cannot be replaced; choose a path in a directory "
                "of your own"
            )
        try:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise ConfigError(f"--out: cannot write in {directory}: {exc.strerror}") from None
        return cls(path, fd, Path(temporary))

    def commit(self, text: str) -> None:
        """Write `text` and rename it onto the path.

        Raises:
            OSError: the write or the rename failed (the temporary file is removed).
        """
        fd, self._fd = self._fd, None
        assert fd is not None, "TokenOut.commit called twice"
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(self._temporary, 0o600)
            os.replace(self._temporary, self.path)
        except BaseException:
            self._temporary.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        """Remove the temporary file unless the token was committed (safe to call twice)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self._temporary.unlink(missing_ok=True)


def _may_replace(directory: os.stat_result, present: os.stat_result, uid: int) -> bool:
    # The kernel's rule for renaming over a name in a sticky directory (/tmp): only the
    # file's owner, the directory's owner or root may.
    if uid == 0 or not directory.st_mode & stat.S_ISVTX:
        return True
    return uid in {present.st_uid, directory.st_uid}
