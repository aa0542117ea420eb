"""A tiny keyring backend for tests: entries in a JSON file named by $TEST_KEYRING_FILE.

Registered the way keyring lets anyone choose a backend: in a subprocess, through
PYTHON_KEYRING_BACKEND=tests.harness.file_keyring.FileKeyring (with the repository on
PYTHONPATH); in-process, with keyring.set_keyring(FileKeyring(path)). It stands in for the
OS keyring a desktop has and a test machine lacks; nothing in it is Vouch's code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

PATH_ENV = "TEST_KEYRING_FILE"


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]  # keyring's documented way to set it

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path or Path(os.environ[PATH_ENV])

    def entries(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def _key(self, service: str, username: str) -> str:
        return f"{service} {username}"

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries().get(self._key(service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.path.write_text(json.dumps({**self.entries(), self._key(service, username): password}))

    def delete_password(self, service: str, username: str) -> None:
        entries = self.entries()
        if entries.pop(self._key(service, username), None) is None:
            raise PasswordDeleteError("no such entry")
        self.path.write_text(json.dumps(entries))
