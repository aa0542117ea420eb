"""A person's own credentials on the client side (issue 15): `vouch credential aws` without a
token (one line and exit 2 without a session; a private, atomic cache per broker and person
that serves until shortly before expiry; cleared by logout), `vouch models`, and the SDK's
`PersonCredentials` / `boto3_session()` with no token. Credentials never outlast the
session (invariant 12)."""

from __future__ import annotations

import io
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import vouch_delegate
from vouch_delegate import NotSignedIn, PersonCredentials, boto3_session
from vouch_delegate.cli import build_parser, main
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import exit_code
from vouch_delegate.cli._own_credentials import OwnCredentialCache, cache_dir
from vouch_delegate.cli._store import SavedSession, SessionStore

from tests.unit.sdk.fakes import Clock, FakeTransport, document, fake_jwt

pytestmark = pytest.mark.unit

SERVER = "http://localhost:8080"
OWN = f"{SERVER}/v1/credentials/aws/self"


def environment(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def sign_in(env: dict[str, str], *, left_s: float = 3600, email: str = "alice@example.com") -> str:
    """A saved session for `email` at SERVER with `left_s` to live; its token."""
    expires = int(time.time() + left_s)
    token = fake_jwt({"iss": SERVER, "sub": email, "exp": expires, "jti": f"j{time.time()}"})
    SessionStore.from_env(env).save(SavedSession(SERVER, email, token, expires))
    return token


def run(env: dict[str, str], http: FakeTransport, *argv: str) -> tuple[int, str, str]:
    """`vouch ARGV` in-process against a scripted broker: (exit code, stdout, stderr)."""
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(args, env, out, err, http=http)
    try:
        code = int(args.handler(ctx))
    except vouch_delegate.VouchError as exc:
        err.write(f"vouch: {exc.detail}\n")
        code = exit_code(exc)
    return code, out.getvalue(), err.getvalue()


# --- vouch credential aws without a token -------------------------------------------------------


def test_without_a_session_it_says_run_vouch_login_in_one_line_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("VOUCH_AGENT_TOKEN", "VOUCH_AGENT_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    env = environment(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["credential", "aws", "--server", SERVER]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing the AWS CLI could mistake for credentials
    assert captured.err == (
        f"vouch: not signed in to {SERVER}: run `vouch login`; for an agent's credentials: "
        "--token-file F, or set VOUCH_AGENT_TOKEN_FILE (or VOUCH_AGENT_TOKEN)\n"
    )
    sign_in(env, left_s=10)  # within the 30 s slack: as good as ended
    assert main(["credential", "aws"]) == 2
    assert capsys.readouterr().err == (
        f"vouch: your session for {SERVER} has expired: run `vouch login`; for an agent's "
        "credentials: --token-file F, or set VOUCH_AGENT_TOKEN_FILE (or VOUCH_AGENT_TOKEN)\n"
    )


def test_a_burst_of_calls_exchanges_once_and_the_cache_is_private(tmp_path: Path) -> None:
    env = environment(tmp_path)
    session = sign_in(env)
    http = FakeTransport(document(time.time() + 3600))
    answers = [run(env, http, "credential", "aws") for _ in range(5)]
    assert [code for code, _, _ in answers] == [0] * 5
    assert len({out for _, out, _ in answers}) == 1
    assert json.loads(answers[0][1])["AccessKeyId"] == "ASIAEXAMPLE"
    assert [r["url"] for r in http.requests] == [OWN]  # one exchange for five AWS commands
    assert http.requests[0]["token"] == session
    [cached] = list(cache_dir(env).iterdir())
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir(env).stat().st_mode) == 0o700
    assert session not in cached.read_text()  # bound to the session by a hash, never the token
    assert not [p for p in cache_dir(env).iterdir() if p.name.endswith(".tmp")]
    # Another request (narrowed) is another entry: it exchanges once more.
    assert run(env, http, "credential", "aws", "--model", "us.claude-haiku-4-5")[0] == 0
    assert http.requests[-1]["body"] == {"models": ["us.claude-haiku-4-5"]}
    assert len(http.requests) == 2


def test_the_cache_serves_until_shortly_before_expiry_and_never_another_session(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path)
    sign_in(env)
    # Credentials of 15 minutes: served while more than a third (5 min) of their life is left.
    http = FakeTransport(document(time.time() + 900))
    assert run(env, http, "credential", "aws")[0] == 0
    cache = OwnCredentialCache.of(env, SERVER, "alice@example.com")
    entry = next(iter(json.loads(cache.path.read_text())["entries"].values()))
    fetched, ends = entry["fetched_at"], entry["expires_at"]
    session = SessionStore.from_env(env).load()
    assert session is not None and session.token
    assert cache.get(session.token, None, None, fetched + 1) is not None
    assert cache.get(session.token, None, None, ends - 301) is not None
    assert cache.get(session.token, None, None, ends - 299) is None  # due: exchange again
    assert cache.get(session.token, None, None, fetched - 60) is None  # a clock gone back
    assert cache.get("another-session", None, None, fetched + 1) is None
    sign_in(env)  # a new login: its own credentials
    assert run(env, http, "credential", "aws")[0] == 0
    assert len(http.requests) == 2


def test_credentials_never_outlast_the_session(tmp_path: Path) -> None:
    env = environment(tmp_path)
    sign_in(env, left_s=600)
    ends = SessionStore.from_env(env).load()
    assert ends is not None and ends.expires_at is not None
    http = FakeTransport(document(time.time() + 900))  # STS's floor outlives the session
    code, out, _ = run(env, http, "credential", "aws")
    assert code == 0
    expiration = json.loads(out)["Expiration"]
    assert expiration == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ends.expires_at))


def test_a_cache_file_others_could_read_or_junk_is_never_served(tmp_path: Path) -> None:
    env = environment(tmp_path)
    sign_in(env)
    http = FakeTransport(document(time.time() + 3600, key="ASIAFIRST"))
    assert run(env, http, "credential", "aws")[0] == 0
    cache = OwnCredentialCache.of(env, SERVER, "alice@example.com")
    cache.path.chmod(0o644)
    http.answers = [document(time.time() + 3600, key="ASIASECOND")]
    code, out, _ = run(env, http, "credential", "aws")
    assert (code, json.loads(out)["AccessKeyId"]) == (0, "ASIASECOND")
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600  # replaced, private again
    cache.path.write_text("{not json")
    cache.path.chmod(0o600)
    http.answers = [document(time.time() + 3600, key="ASIATHIRD")]
    assert json.loads(run(env, http, "credential", "aws")[1])["AccessKeyId"] == "ASIATHIRD"
    assert len(http.requests) == 3


def test_an_unwritable_cache_still_answers_and_says_why(tmp_path: Path) -> None:
    env = environment(tmp_path)
    sign_in(env)
    Path(env["XDG_CACHE_HOME"]).write_text("a file where the directory should be")
    http = FakeTransport(document(time.time() + 3600))
    code, out, err = run(env, http, "credential", "aws")
    assert code == 0 and json.loads(out)["Version"] == 1
    assert err.startswith("warning: credentials not cached in ")


def test_logout_clears_the_cache(tmp_path: Path) -> None:
    env = environment(tmp_path)
    sign_in(env)
    signed_out = {"email": "alice@example.com", "signed_out_at": time.time()}
    http = FakeTransport(document(time.time() + 3600), signed_out)
    assert run(env, http, "credential", "aws")[0] == 0
    cache = OwnCredentialCache.of(env, SERVER, "alice@example.com")
    assert cache.path.exists()
    assert run(env, http, "logout")[0] == 0
    assert not cache.path.exists()
    assert run(env, http, "credential", "aws")[0] == 2


def test_caches_are_per_broker_and_per_person(tmp_path: Path) -> None:
    env = environment(tmp_path)
    paths = {
        OwnCredentialCache.of(env, server, email).path
        for server in (SERVER, "https://vouch.example.com")
        for email in ("alice@example.com", "bob@example.com")
    }
    assert len(paths) == 4 and {p.parent for p in paths} == {cache_dir(env)}
    assert cache_dir({"XDG_CACHE_HOME": "relative"}) == Path.home() / ".cache" / "vouch"


def test_an_agent_token_still_means_the_agents_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(tmp_path)
    sign_in(env)
    token = fake_jwt({"iss": SERVER, "exp": int(time.time()) + 3600})
    env["VOUCH_AGENT_TOKEN"] = token
    monkeypatch.setenv("VOUCH_AGENT_TOKEN", token)  # the SDK reads the process environment
    http = FakeTransport(document(time.time() + 900))
    assert run(env, http, "credential", "aws")[0] == 0
    assert http.requests[0]["url"] == f"{SERVER}/v1/credentials/aws"
    assert http.requests[0]["token"] == token
    assert not cache_dir(env).exists()  # agents' credentials are never cached on disk


def test_aws_profile_without_a_token_writes_the_persons_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(tmp_path)
    env["AWS_CONFIG_FILE"] = str(tmp_path / "aws" / "config")
    sign_in(env)
    http = FakeTransport(document(time.time() + 3600))
    monkeypatch.setattr(http, "answer_header", lambda name: "us-east-1")
    code, _, err = run(env, http, "aws-profile", "--server", SERVER)
    assert code == 0, err
    text = Path(env["AWS_CONFIG_FILE"]).read_text()
    assert "[profile vouch]\ncredential_process = " in text
    assert f" credential aws --server {SERVER}\nregion = us-east-1\n" in text
    assert "--token-file" not in text
    assert [r["url"] for r in http.requests] == [OWN]  # and the credentials are cached
    assert run(env, http, "credential", "aws", "--server", SERVER)[0] == 0
    assert len(http.requests) == 1


# --- vouch models -------------------------------------------------------------------------------


def test_models_shows_what_i_may_use_and_delegate(tmp_path: Path) -> None:
    env = environment(tmp_path)
    session = sign_in(env)
    answer: dict[str, Any] = {
        "email": "alice@example.com",
        "region": "us-east-1",
        "models": [
            {
                "id": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "name": "us.claude-haiku-4-5",
                "use": True,
                "delegate": True,
                "use_max_duration_s": 3600,
                "delegate_max_ttl_s": 28800,
            },
            {
                "id": "us.anthropic.claude-opus-4-5-20251101-v1:0",
                "name": "us.claude-opus-4-5",
                "use": False,
                "delegate": True,
                "use_max_duration_s": None,
                "delegate_max_ttl_s": 7200,
            },
        ],
    }
    http = FakeTransport(answer)
    code, out, _ = run(env, http, "models")
    assert code == 0
    assert out == (
        "Models for alice@example.com (called in us-east-1):\n"
        "  MODEL                YOURSELF        DELEGATE\n"
        "  us.claude-haiku-4-5  up to 1h        up to 8h\n"
        "  us.claude-opus-4-5   no              up to 2h\n"
    )
    assert http.requests[0]["url"] == f"{SERVER}/v1/models"
    assert http.requests[0]["token"] == session
    code, out, _ = run(env, http, "models", "--json")
    assert json.loads(out) == answer


# --- the SDK: PersonCredentials and boto3_session() with no token -------------------------------


def test_person_credentials_read_the_saved_session_and_end_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VOUCH_SERVER", raising=False)
    with pytest.raises(NotSignedIn, match="run `vouch login`"):
        PersonCredentials()
    session = sign_in(env, left_s=600)
    clock = Clock(time.time())
    http = FakeTransport(document(clock.now + 900))
    mine = PersonCredentials(transport=http, clock=clock)
    assert mine.server == SERVER  # the saved session's broker
    got = mine.get()
    saved = SessionStore.from_env(env).load()
    assert saved is not None and got.expiration.timestamp() == saved.expires_at
    assert [(r["url"], r["token"]) for r in http.requests] == [(OWN, session)]
    clock.now = float(saved.expires_at or 0) + 1
    with pytest.raises(NotSignedIn, match=r"ended at .*: run `vouch login`"):
        mine.get()
    assert len(http.requests) == 1  # an ended session never reaches the broker
    SessionStore.from_env(env).save(SavedSession(SERVER, "alice@example.com"))  # logged out
    with pytest.raises(NotSignedIn, match=f"not signed in to {SERVER}"):
        PersonCredentials(transport=http).get()


def test_boto3_session_without_a_token_is_the_persons_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for name in ("VOUCH_AGENT_TOKEN", "VOUCH_AGENT_TOKEN_FILE", "VOUCH_SERVER"):
        monkeypatch.delenv(name, raising=False)
    session = sign_in(env)
    http = FakeTransport(document(time.time() + 3600, key="ASIAMINE"))
    boto = boto3_session(transport=http, region_name="us-east-1")
    frozen = boto.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    assert frozen.access_key == "ASIAMINE"
    assert [(r["url"], r["token"]) for r in http.requests] == [(OWN, session)]
    assert os.environ.get("VOUCH_AGENT_TOKEN") is None
