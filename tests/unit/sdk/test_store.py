"""Where the person's session is kept: the OS keyring when one is usable, else a 0600 file.

The keyring path runs against a tiny backend registered through keyring's own API; the
fallback against keyring's `fail` backend, which is what keyring itself resolves to on a
headless machine such as the one running these tests.
"""

from __future__ import annotations

import io
import json
import stat
import time
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from keyring.errors import PasswordSetError
from vouch_delegate._errors import NotSignedIn
from vouch_delegate.cli import build_parser, main
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._store import SavedSession, SessionStore

from tests.harness.file_keyring import FileKeyring
from tests.unit.sdk.fakes import FakeBroker

pytestmark = pytest.mark.unit

SERVER = "http://localhost:8080"
TOKEN = "eyJ.session-token.sig"


@pytest.fixture
def os_keyring(tmp_path: Path) -> FileKeyring:
    """The OS keyring a desktop would have (the autouse fixture restores `fail` after)."""
    backend = FileKeyring(tmp_path / "keyring.json")
    keyring.set_keyring(backend)
    return backend


def store(tmp_path: Path) -> SessionStore:
    return SessionStore.from_env({"XDG_CONFIG_HOME": str(tmp_path / "config")})


def session(server: str = SERVER) -> SavedSession:
    return SavedSession(server, "alice@example.com", TOKEN, int(time.time()) + 3600)


def test_session_token_is_kept_in_the_os_keyring_when_one_is_usable(
    tmp_path: Path, os_keyring: FileKeyring
) -> None:
    saved = store(tmp_path).save(session())
    assert saved.kept_in == "keyring"
    text = store(tmp_path).path.read_text()
    assert TOKEN not in text
    assert json.loads(text) == {
        "server": SERVER,
        "email": "alice@example.com",
        "expires_at": saved.expires_at,
        "signed_out_at": None,
        "token_store": "keyring",
    }
    assert os_keyring.entries() == {f"vouch {SERVER}": TOKEN}
    loaded = store(tmp_path).load()
    assert loaded == saved and loaded is not None and loaded.signed_in()
    store(tmp_path).save(loaded.without_token())  # logout
    assert os_keyring.entries() == {}
    assert json.loads(store(tmp_path).path.read_text())["token_store"] == "file"


def test_session_falls_back_to_the_0600_file_without_a_usable_keyring(tmp_path: Path) -> None:
    assert isinstance(keyring.get_keyring(), fail.Keyring)
    saved = store(tmp_path).save(session())
    assert saved.kept_in == "file"
    path = store(tmp_path).path
    assert json.loads(path.read_text())["token"] == TOKEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store(tmp_path).load() == saved


def test_a_keyring_that_refuses_the_token_falls_back_to_the_file(tmp_path: Path) -> None:
    class Locked(FileKeyring):
        def set_password(self, service: str, username: str, password: str) -> None:
            raise PasswordSetError("the collection is locked")

    keyring.set_keyring(Locked(tmp_path / "keyring.json"))
    assert store(tmp_path).save(session()).kept_in == "file"
    assert json.loads(store(tmp_path).path.read_text())["token"] == TOKEN


def test_a_file_from_before_the_keyring_still_loads_and_moves_in_at_the_next_save(
    tmp_path: Path, os_keyring: FileKeyring
) -> None:
    path = store(tmp_path).path
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"server": SERVER, "email": "a@example.com", "token": TOKEN}))
    path.chmod(0o600)
    loaded = store(tmp_path).load()
    assert loaded is not None and loaded.token == TOKEN and loaded.kept_in == "file"
    store(tmp_path).save(loaded)
    assert TOKEN not in path.read_text() and os_keyring.entries() == {f"vouch {SERVER}": TOKEN}


def test_a_session_in_a_keyring_that_cannot_be_read_here_asks_for_a_login(
    tmp_path: Path, os_keyring: FileKeyring
) -> None:
    store(tmp_path).save(session())
    keyring.set_keyring(fail.Keyring())  # e.g. the same account over ssh, without D-Bus
    args = build_parser().parse_args(["delegate", "list"])
    ctx = Context(args, {"XDG_CONFIG_HOME": str(tmp_path / "config")}, io.StringIO(), io.StringIO())
    with pytest.raises(NotSignedIn, match="in the OS keyring, which cannot be read here"):
        ctx.session()


def test_status_says_where_the_session_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("VOUCH_SERVER", raising=False)
    with FakeBroker() as broker:
        store(tmp_path).save(session(broker.url))
        for _ in range(2):  # each status lists delegations and keys
            broker.answer(200, {"delegations": []})
            broker.answer(200, {"keys": []})
        assert main(["status"]) == 0
        keyring.set_keyring(FileKeyring(tmp_path / "keyring.json"))
        store(tmp_path).save(session(broker.url))
        assert main(["status", "--json"]) == 0
    text, report = capsys.readouterr().out.split("\n{", 1)
    path = store(tmp_path).path
    assert f"kept in:     {path} (mode 0600; no usable OS keyring here)" in text
    assert json.loads("{" + report)["session_store"] == "keyring"
    assert [s.bearer for s in broker.seen] == [TOKEN] * 4


def test_status_names_the_keyring_backend(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    os_keyring: FileKeyring,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("VOUCH_SERVER", raising=False)
    with FakeBroker() as broker:
        store(tmp_path).save(session(broker.url))
        broker.answer(200, {"delegations": []})
        broker.answer(200, {"keys": []})
        assert main(["status"]) == 0
    assert "kept in:     the OS keyring (file keyring FileKeyring)" in capsys.readouterr().out
