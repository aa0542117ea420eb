"""Where the agent token and the broker URL come from, and which token files are refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from vouch_delegate import AgentCredentials, ConfigError
from vouch_delegate._token import claims_of, read_token_file, resolve_server, token_source

from tests.unit.sdk.fakes import FakeBroker, document, fake_jwt

pytestmark = pytest.mark.unit

TOKEN = fake_jwt({"iss": "https://issuer.example.com", "sub": "agent.a.b@example.com"})


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_token_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "agent.token", TOKEN, mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o}.*chmod 600"):
        read_token_file(path)


def test_private_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.token", f"  {TOKEN}\n", 0o600)
    assert read_token_file(path) == TOKEN
    assert read_token_file(write(tmp_path / "ro", TOKEN, 0o400)) == TOKEN


def test_missing_or_empty_token_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_token_file(tmp_path / "absent")
    with pytest.raises(ConfigError, match="empty"):
        read_token_file(write(tmp_path / "empty", "\n", 0o600))


def test_agent_credentials_refuse_an_open_token_file_at_construction(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.token", TOKEN, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        AgentCredentials(token_file=path)


def test_token_source_order_argument_then_env_token_then_env_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t", "from-file", 0o600)
    env = {"VOUCH_AGENT_TOKEN": "from-env", "VOUCH_AGENT_TOKEN_FILE": str(path)}
    assert token_source("given", None, env).read() == "given"
    assert token_source(None, path, env).read() == "from-file"
    assert token_source(None, None, env).read() == "from-env"
    assert token_source(None, None, {"VOUCH_AGENT_TOKEN_FILE": str(path)}).read() == "from-file"
    with pytest.raises(ConfigError, match="no agent token"):
        token_source(None, None, {})


def test_token_file_is_reread_so_a_rotated_token_takes_effect(tmp_path: Path) -> None:
    path = write(tmp_path / "t", "first", 0o600)
    source = token_source(None, path, {})
    path.write_text("second")
    assert source.read() == "second"


def test_server_order_argument_then_env_then_token_issuer() -> None:
    env = {"VOUCH_SERVER": "https://env.example.com/"}
    assert resolve_server("https://arg.example.com", TOKEN, env) == "https://arg.example.com"
    assert resolve_server(None, TOKEN, env) == "https://env.example.com"
    assert resolve_server(None, TOKEN, {}) == "https://issuer.example.com"
    with pytest.raises(ConfigError, match="no broker URL"):
        resolve_server(None, fake_jwt({"sub": "x"}), {})


def test_an_issuer_over_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="https"):
        resolve_server(None, fake_jwt({"iss": "http://evil.example.com"}), {})


@pytest.mark.parametrize("bad", ["not-a-jwt", "a.b.c", "a.W10.c"])
def test_claims_of_rejects_what_is_not_a_jwt_payload(bad: str) -> None:
    with pytest.raises(ConfigError):
        claims_of(bad)


def test_an_issuer_with_a_backslash_before_at_is_refused() -> None:
    # urlsplit sees host "localhost"; urllib3 connects to evil.example.com in clear text.
    with pytest.raises(ConfigError, match="broker URL"):
        resolve_server(None, fake_jwt({"iss": "http://evil.example.com\\@localhost"}), {})


def test_a_backslash_url_never_sends_the_token_to_the_host_it_hides() -> None:
    # The host the check saw (localhost) is not the host urllib3 dials (127.0.0.2 here: a
    # loopback address, so the test needs no network; the case was a remote one).
    with FakeBroker(host="127.0.0.2") as other:
        other.answer(200, document(time.time() + 900))
        hidden = other.url + "\\@localhost"
        token = fake_jwt({"iss": hidden, "dlg": "dlg_1"})
        with pytest.raises(ConfigError, match="broker URL"):
            AgentCredentials(token=token).get()
        with pytest.raises(ConfigError, match="broker URL"):
            AgentCredentials(server=hidden, token=token).get()
    assert other.seen == []


def test_token_source_repr_masks_the_token(tmp_path: Path) -> None:
    source = token_source(TOKEN, None, {})
    assert TOKEN not in repr(source) and TOKEN[-12:] not in repr(source)
    assert repr(source) == f"TokenSource(token=<{len(TOKEN)} characters, hidden>)"
    from_file = token_source(None, tmp_path / "agent.token", {})
    assert repr(from_file) == f"TokenSource(path={tmp_path / 'agent.token'!r})"
