"""Directories for secrets (the session, key files): created 0700 whatever the umask."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def make_private_dirs(path: Path) -> None:
    """Create `path` and every missing parent with mode 0700; existing ones stay as they are.

    `mkdir(parents=True)` gives the parents the umask's mode (0777 under umask 000), and
    even `mode=` is masked by it; `chmod` is not, so each directory made here gets it.

    Raises:
        OSError: a directory could not be created.
    """
    missing: list[Path] = []
    here = path
    while not os.path.lexists(here) and here != here.parent:
        missing.append(here)
        here = here.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)  # never wider than 0700, even before the chmod
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs to set
        os.chmod(directory, 0o700)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
