"""CLI pieces without a broker: exit codes, argument handling, the session file, and the
refusal to tap for a grant the challenge does not commit to."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shlex
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vouch_delegate
from vouch_delegate._errors import NotSignedIn
from vouch_delegate.cli import _report, build_parser, main
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import NoKey, exit_code
from vouch_delegate.cli._store import SavedSession, SessionStore, config_dir
from vouch_delegate.cli._token_out import TokenOut
from vouch_delegate.cli.delegate import parse_amount

from tests.unit.sdk.fakes import FakeBroker, FakeTransport, enrolled_soft_key, signed_proposal

pytestmark = pytest.mark.unit

SERVER = "http://localhost:8080"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotSignedIn("login"), 2),
        (NoKey("no key"), 3),
        (vouch_delegate.NetworkError("down"), 4),
        (vouch_delegate.StsUnavailable("throttled"), 4),
        (vouch_delegate.TokenRevoked("revoked"), 5),
        (vouch_delegate.PolicyDenied("no"), 5),
        (vouch_delegate.PermissionDenied("no"), 5),
        (vouch_delegate.GrantMismatch("swapped"), 5),
        (vouch_delegate.ConfigError("bad"), 6),
        (vouch_delegate.GrantInvalid("bad model"), 6),
        (vouch_delegate.NotFound("gone"), 1),
        (vouch_delegate.InvalidResponse("no JSON"), 1),
        (vouch_delegate.VouchError("internal"), 1),
    ],
)
def test_exit_codes(error: Exception, code: int) -> None:
    assert exit_code(error) == code


def test_bad_arguments_exit_6_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["delegate", "--ttl"])
    assert caught.value.code == 6
    assert "vouch:" in capsys.readouterr().err
    assert main([]) == 6


def test_global_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--server", SERVER, "status"])
    after = parser.parse_args(["status", "--json", "--server", SERVER])
    nested = parser.parse_args(["delegate", "list", "--json"])
    assert before.json and after.json and nested.json
    assert before.server == after.server == SERVER
    assert parser.parse_args(["status"]).json is False


def test_exec_takes_everything_after_the_double_dash() -> None:
    args = build_parser().parse_args(["exec", "--token-file", "t", "--", "ls", "-l", "--all"])
    assert args.command[-3:] == ["ls", "-l", "--all"]
    assert args.token_file == "t"


def test_session_file_is_private_atomic_and_checked(tmp_path: Path) -> None:
    store = SessionStore.from_env({"XDG_CONFIG_HOME": str(tmp_path)})
    assert store.path == tmp_path / "vouch" / "session.json"
    store.save(SavedSession(SERVER, "alice@example.com", "tok", int(time.time()) + 3600))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir()] == ["session.json"]
    loaded = store.load()
    assert loaded is not None and loaded.signed_in()
    assert not loaded.without_token().signed_in()
    store.path.chmod(0o644)
    with pytest.raises(vouch_delegate.ConfigError, match="group or others"):
        store.load()


def test_config_dir_defaults_to_home_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert config_dir({}) == Path("/home/someone/.config/vouch")
    assert config_dir({"XDG_CONFIG_HOME": "relative"}) == Path("/home/someone/.config/vouch")


def signed_in_context(tmp_path: Path, http: FakeTransport, *argv: str) -> Context:
    env = {"XDG_CONFIG_HOME": str(tmp_path), "VOUCH_PIN": "123456"}
    SessionStore.from_env(env).save(
        SavedSession(SERVER, "alice@example.com", "session.jwt", int(time.time()) + 3600)
    )
    args = build_parser().parse_args(list(argv))
    return Context(args, env, io.StringIO(), io.StringIO(), http=http)


def swapped_proposal() -> dict[str, Any]:
    """The broker shows a one-model grant but the challenge commits to a wider one."""
    shown = {"agent": "researcher", "email": "alice@example.com", "models": ["m1"], "ttl_s": 7200}
    signed = {**shown, "models": ["m1", "m2"]}
    text = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(b"vouch-grant-v1\x00" + text).digest()
    challenge = base64.urlsafe_b64encode(b"\0" * 16 + digest).decode().rstrip("=")
    return {
        "challenge_id": "c" * 32,
        "grant": shown,
        "grant_canonical": json.dumps(shown, sort_keys=True, separators=(",", ":")),
        "options": {"publicKey": {"challenge": challenge}},
    }


def test_delegate_refuses_before_the_tap_when_the_challenge_is_for_another_grant(
    tmp_path: Path,
) -> None:
    http = FakeTransport(swapped_proposal())
    key_file = tmp_path / "key.json"
    ctx = signed_in_context(
        tmp_path,
        http,
        *("delegate", "--agent", "researcher", "--model", "m1"),
        *("--authenticator", f"soft:{key_file}"),
    )
    with pytest.raises(vouch_delegate.GrantMismatch):
        ctx.args.handler(ctx)
    assert [r["url"] for r in http.requests] == [f"{SERVER}/v1/delegations/begin"]
    assert not key_file.exists()  # the key was never even opened
    assert http.requests[0]["token"] == "session.jwt"


def test_a_session_the_broker_no_longer_accepts_means_not_signed_in(tmp_path: Path) -> None:
    http = FakeTransport(vouch_delegate.TokenExpired("token expired"))
    ctx = signed_in_context(tmp_path, http, "delegate", "list")
    with pytest.raises(NotSignedIn):
        ctx.args.handler(ctx)
    revoked = signed_in_context(tmp_path, FakeTransport(vouch_delegate.TokenRevoked("r")), "status")
    with pytest.raises(vouch_delegate.TokenRevoked):
        revoked.args.handler(revoked)


def test_status_reports_not_signed_in_with_exit_2(tmp_path: Path) -> None:
    args = build_parser().parse_args(["status", "--json", "--server", SERVER])
    out = io.StringIO()
    ctx = Context(args, {"XDG_CONFIG_HOME": str(tmp_path)}, out, io.StringIO())
    assert args.handler(ctx) == 2
    assert json.loads(out.getvalue())["signed_in"] is False


def test_a_malformed_broker_answer_exits_1_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("VOUCH_SERVER", raising=False)
    with FakeBroker() as broker:
        SessionStore.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).save(
            SavedSession(broker.url, "alice@example.com", "session.jwt", int(time.time()) + 3600)
        )
        broker.answer(200, {"delegation": []})  # a broker (or something) answering nonsense
        assert main(["delegate", "list"]) == 1
        action = {"action": "invite", "by": "alice@example.com", "email": "bob@example.com"}
        proposal = {"challenge_id": "c" * 32, "action": action, "action_canonical": 5}
        broker.answer(200, {**proposal, "options": {"publicKey": {}}})
        assert main(["admin", "invite", "bob@example.com", "--json"]) == 1
    out, err = capsys.readouterr()
    # Nothing half-decoded reaches stdout: under --json, only the problem document.
    assert json.loads(out) == {
        "type": "urn:vouch:problem:invalid-response",
        "title": "Unexpected answer from the broker",
        "detail": "the broker's answer to POST /v1/admin/invites/begin is malformed: "
        "Expected `str`, got `int` - at `$.action_canonical`",
        "exit_code": 1,
    }
    assert err == (
        "vouch: the broker's answer to GET /v1/delegations is malformed: "
        "Object missing required field `delegations`\n"
        "vouch: the broker's answer to POST /v1/admin/invites/begin is malformed: "
        "Expected `str`, got `int` - at `$.action_canonical`\n"
    )
    assert [(s.method, s.path, s.bearer) for s in broker.seen] == [
        ("GET", "/v1/delegations", "session.jwt"),
        ("POST", "/v1/admin/invites/begin", "session.jwt"),
    ]


def test_webauthn_options_fido2_cannot_read_are_an_invalid_response_before_any_tap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("VOUCH_PIN", "123456")
    key = f"soft:{tmp_path / 'key.json'}"
    with FakeBroker() as broker:
        broker.answer(200, {"challenge_id": "c" * 32, "options": {"publicKey": {"timeout": "x"}}})
        argv = ["login", "--email", "alice@example.com", "--server", broker.url]
        assert main([*argv, "--authenticator", key]) == 1
    err = capsys.readouterr().err
    assert err.endswith(
        "vouch: the broker's WebAuthn options are malformed "
        "(invalid literal for int() with base 10: 'x')\n"
    )
    assert "Touch your security key" not in err
    assert [s.path for s in broker.seen] == ["/v1/login/begin"]  # no complete step


def test_saved_session_and_context_mask_the_token_and_pin_in_repr(tmp_path: Path) -> None:
    session = SavedSession(SERVER, "alice@example.com", "eyJ.secret-session.sig", 1)
    assert "secret-session" not in repr(session)
    assert repr(session) == (
        "SavedSession(server='http://localhost:8080', email='alice@example.com', "
        "token=<22 characters, hidden>, expires_at=1, signed_out_at=None, kept_in='file')"
    )
    ctx = signed_in_context(tmp_path, FakeTransport({}), "status")
    assert ctx.saved is not None and ctx.saved.token == "session.jwt"
    assert "session.jwt" not in repr(ctx) and "123456" not in repr(ctx)  # VOUCH_PIN


HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
OPUS = "us.anthropic.claude-opus-4-5-20251101-v1:0"


def saved_for(broker: FakeBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A signed-in person for `broker`, with a software key file not yet created."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("VOUCH_PIN", "123456")
    monkeypatch.delenv("VOUCH_SERVER", raising=False)
    SessionStore.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).save(
        SavedSession(broker.url, "alice@example.com", "session.jwt", int(time.time()) + 3600)
    )
    return f"soft:{tmp_path / 'key.json'}"


def test_delegate_refuses_before_the_tap_a_proposal_with_a_model_not_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    grant = {
        "email": "alice@example.com",
        "agent": "researcher",
        "models": [HAIKU, OPUS],  # the challenge honestly commits to both
        "ttl_s": 7200,
        "purpose": "",
        "max_sts_s": None,
        "rate": None,
    }
    with FakeBroker() as broker:
        key = saved_for(broker, tmp_path, monkeypatch)
        broker.answer(200, signed_proposal(grant))
        argv = ["delegate", "--agent", "researcher", "--model", "us.claude-haiku-4-5"]
        assert main([*argv, "--authenticator", key]) == 5
    err = capsys.readouterr().err
    assert err == (
        "vouch: the broker proposed 2 models for 1 requested "
        f"(us.claude-haiku-4-5 -> {HAIKU}, {OPUS}); refusing to sign\n"
    )
    assert [s.path for s in broker.seen] == ["/v1/delegations/begin"]
    assert not (tmp_path / "key.json").exists()  # the key was never opened


def test_a_proposal_whose_rate_is_text_never_reaches_the_screen_or_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spoof = "\x1b[1A\x1b[2K  models:   us.claude-haiku-4-5"
    grant = {"email": "alice@example.com", "agent": "researcher", "models": [OPUS]}
    with FakeBroker() as broker:
        key = saved_for(broker, tmp_path, monkeypatch)
        broker.answer(200, signed_proposal({**grant, "ttl_s": 7200, "rate": spoof}))
        argv = ["delegate", "--agent", "researcher", "--model", "us.claude-opus-4-5"]
        assert main([*argv, "--authenticator", key]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "Expected `int | null`, got `str` - at `$.grant.rate`" in err
    assert not (tmp_path / "key.json").exists()


def test_text_a_broker_chooses_is_escaped_wherever_the_cli_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = {
        "id": "dlg_1\x1b[2K",
        "email": "alice@example.com",
        "agent": "researcher\r\nfake-row              all good",
        "sub": "agent.researcher.alice@example.com",
        "models": [f"{HAIKU}\x1b]0;pwned\x07"],
        "cid": "cid1",
        "created_at": 1_800_000_000,
        "expires_at": 1_800_007_200,
    }
    with FakeBroker() as broker:
        saved_for(broker, tmp_path, monkeypatch)
        broker.answer(200, {"delegations": [record]})
        assert main(["delegate", "list"]) == 0
        broker.answer(200, record)
        assert main(["delegate", "revoke", "dlg_1"]) == 0
        problem = {
            "type": "urn:vouch:problem:permission-denied",
            "status": 403,
            "title": "Forbidden",
        }
        broker.answer(403, {**problem, "detail": "no\x1b[2K\rvouch: ok", "hint": "\x1b[31m"})
        assert main(["delegate", "revoke", "dlg_2", "--verbose"]) == 5
    out, err = capsys.readouterr()
    for control in ("\x1b", "\x07", "\r"):
        assert control not in out + err
    assert not any(line.startswith("fake-row") for line in (out + err).splitlines())
    assert "researcher\\r\\nfake-row" in out and "researcher\\r\\nfake-row" in err
    assert "vouch: no\\x1b[2K\\rvouch: ok\n" in err


def test_a_token_that_cannot_be_written_after_the_tap_is_revoked_not_left_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "agent.token"
    grant = {
        "email": "alice@example.com",
        "agent": "researcher",
        "models": [HAIKU],
        "ttl_s": 7200,
        "purpose": "",
        "max_sts_s": None,
        "rate": None,
    }
    record = {
        "id": "dlg_lost",
        "email": "alice@example.com",
        "agent": "researcher",
        "sub": "agent.researcher.alice@example.com",
        "models": [HAIKU],
        "cid": "cid1",
        "created_at": 1_800_000_000,
        "expires_at": 1_800_007_200,
    }
    with FakeBroker() as broker:
        server = broker.url.replace("127.0.0.1", "localhost")  # fido2: an http origin is localhost
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        monkeypatch.setenv("VOUCH_PIN", "123456")
        monkeypatch.setenv("VOUCH_AUTHENTICATOR", enrolled_soft_key(tmp_path / "key.json", server))
        SessionStore.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).save(
            SavedSession(server, "alice@example.com", "session.jwt", int(time.time()) + 3600)
        )
        broker.answer(200, signed_proposal(grant))
        # Between the check and the write, something takes the destination's place.
        broker.answer(200, {"delegation": record, "token": "a.b.c"}, before=out.mkdir)
        broker.answer(200, {**record, "revoked_at": 1_800_000_001, "revoked_by": "alice"})
        argv = ["delegate", "--agent", "researcher", "--model", "us.claude-haiku-4-5"]
        assert main([*argv, "--out", str(out)]) == 6
    err = capsys.readouterr().err
    assert "Touch your security key" in err  # the tap was spent
    assert err.endswith(
        f"vouch: cannot write the agent token to {out}: Is a directory; delegation dlg_lost "
        "was revoked, so no token is left live: choose another --out and delegate again\n"
    )
    assert [(s.method, s.path, s.bearer) for s in broker.seen] == [
        ("POST", "/v1/delegations/begin", "session.jwt"),
        ("POST", "/v1/delegations/complete", "session.jwt"),
        ("DELETE", "/v1/delegations/dlg_lost", "session.jwt"),
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".agent.token")] == []


def test_out_refuses_a_file_it_could_not_replace_in_a_shared_sticky_directory(
    tmp_path: Path,
) -> None:
    # The kernel lets nobody but the owner (or root) replace a file in a sticky directory;
    # the check runs as another uid, since a test running as root may replace anything.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = shared / "agent.token"
    planted.symlink_to(tmp_path / "elsewhere")
    other_uid = os.geteuid() + 4242
    with pytest.raises(vouch_delegate.ConfigError, match="belongs to another user"):
        TokenOut.prepare(planted, uid=other_uid)
    assert sorted(p.name for p in shared.iterdir()) == ["agent.token"]  # nothing left behind
    TokenOut.prepare(planted).discard()  # its owner may
    shared.chmod(0o777)
    TokenOut.prepare(planted, uid=other_uid).discard()  # and anyone without the sticky bit


def test_config_tree_is_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    config = tmp_path / "home" / ".config"
    store = SessionStore.from_env({"XDG_CONFIG_HOME": str(config)})
    previous = os.umask(0)
    try:
        store.save(SavedSession(SERVER, "alice@example.com"))
    finally:
        os.umask(previous)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in (config.parent, config, config / "vouch")
    }
    assert modes == {"home": 0o700, ".config": 0o700, "vouch": 0o700}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_delegate_requests_shows_the_askers_words_escaped_and_framed_as_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("VOUCH_SERVER", raising=False)
    now = int(time.time())
    hostile = {  # what a broker must never relay, and the CLI must not trust it not to
        "user_code": "BCDF-GHJK",
        "agent": "nightly\x1b[2J",
        "models": ["us.anthropic.claude-haiku-4-5-20251001-v1:0", "m2"],
        "ttl_s": 5400,
        "message": 'ok" \\ approved by admin\nvouch: \u202eall clear\x1b[31m',
        "address": "192.0.2.7",
        "created_at": now - 125,
        "expires_at": now + 175,
    }
    with FakeBroker() as broker:
        SessionStore.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).save(
            SavedSession(broker.url, "alice@example.com", "session.jwt", now + 3600)
        )
        broker.answer(200, {"requests": [hostile]})
        assert main(["delegate", "requests"]) == 0
        text, hint = capsys.readouterr()
        broker.answer(200, {"requests": [hostile]})
        assert main(["delegate", "requests", "--json"]) == 0
        as_json = capsys.readouterr().out
        broker.answer(200, {"requests": []})
        assert main(["delegate", "requests"]) == 0
        empty = capsys.readouterr()
    [first, agent, models, more, lifetime, key, message] = text.splitlines()
    assert first.startswith("BCDF-GHJK  asked 2m") and "ago from 192.0.2.7 (expires in 2m" in first
    assert agent == "  agent:    nightly\\x1b[2J"
    assert (models, more) == (
        "  models:   us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "            m2",
    )
    assert lifetime == "  lifetime: 1h30m"
    assert key == "  key:      not bound"
    assert message == (
        "  message (the agent's words, not the broker's): "
        '"ok\\" \\\\ approved by admin\\nvouch: \\u202eall clear\\x1b[31m"'
    )
    assert "\x1b" not in text and "\u202e" not in text
    assert "vouch delegate deny CODE" in hint
    assert json.loads(as_json) == {"requests": [hostile]}
    assert (empty.out, empty.err) == ("no pending requests\n", "")
    assert [(s.method, s.path, s.bearer) for s in broker.seen] == [
        ("GET", "/v1/delegation-requests", "session.jwt")
    ] * 3


def problem_of(out: str) -> dict[str, Any]:
    """The one JSON document on stdout."""
    document: dict[str, Any] = json.loads(out)
    return document


def test_json_failures_print_a_problem_on_stdout_and_the_line_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in ("VOUCH_SERVER", "VOUCH_AGENT_TOKEN", "VOUCH_AGENT_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--json", "--server", "ftp://x", "delegate", "list"]) == 6
    out, err = capsys.readouterr()
    detail = "broker URL must be http(s)://HOST[:PORT][/PATH], not 'ftp://x'"
    assert problem_of(out) == {
        "type": "urn:vouch:problem:config",
        "title": "Bad arguments or configuration",
        "detail": detail,
        "exit_code": 6,
    }
    assert err == f"vouch: {detail}\n"
    # Arguments that do not parse, wherever --json is, and no command at all.
    with pytest.raises(SystemExit) as caught:
        main(["delegate", "--json", "--ttl"])
    assert caught.value.code == 6
    out, err = capsys.readouterr()
    assert problem_of(out)["detail"] == "argument --ttl: expected one argument"
    assert problem_of(out)["exit_code"] == 6
    assert err.endswith("vouch: argument --ttl: expected one argument\n")
    assert main(["--json"]) == 6
    assert problem_of(capsys.readouterr().out)["detail"] == "no command given: see vouch --help"
    # Without --json, stdout stays empty; after exec's `--`, --json is the command's.
    assert main(["--server", "ftp://x", "delegate", "list"]) == 6
    assert capsys.readouterr().out == ""
    assert main(["exec", "--", "true", "--json"]) == 6
    assert capsys.readouterr().out == ""


def test_status_with_an_unusable_broker_url_is_configuration_not_signed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("VOUCH_SERVER", raising=False)
    assert main(["status", "--server", "localhost:8080"]) == 6
    assert capsys.readouterr().err == (
        "vouch: broker URL must be http(s)://HOST[:PORT][/PATH], not 'localhost:8080'\n"
    )
    monkeypatch.setenv("VOUCH_SERVER", "localhost:8080")
    assert main(["status", "--json"]) == 6
    assert problem_of(capsys.readouterr().out)["type"] == "urn:vouch:problem:config"
    monkeypatch.delenv("VOUCH_SERVER")
    assert main(["status"]) == 2  # nothing given, nothing saved: simply not signed in
    assert capsys.readouterr().out == (
        "not signed in: no broker URL: pass --server URL or set VOUCH_SERVER\n"
    )


def test_exec_without_a_token_or_session_names_login_and_the_token_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("VOUCH_AGENT_TOKEN", "VOUCH_AGENT_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    # Without a token, exec runs with the person's own credentials: no session, one line.
    assert main(["--server", SERVER, "exec", "--", "true"]) == 2
    assert capsys.readouterr().err == (
        f"vouch: not signed in to {SERVER}: run `vouch login`; for an agent's credentials: "
        "--token-file F, or set VOUCH_AGENT_TOKEN_FILE (or VOUCH_AGENT_TOKEN)\n"
    )


def test_admin_invite_and_reinstate_take_the_email_as_operand_or_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    for command in ("invite", "reinstate"):
        operand = parser.parse_args(["admin", command, "bob@example.com"])
        option = parser.parse_args(["admin", command, "--email", "bob@example.com"])
        assert (operand.email, option.email_option) == ("bob@example.com", "bob@example.com")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    argv = ["--server", SERVER, "admin", "invite"]
    # Refused before the session or the broker is needed (no session is saved here).
    assert main(argv) == 6
    assert capsys.readouterr().err == (
        "vouch: vouch admin invite needs an email: EMAIL or --email EMAIL\n"
    )
    assert main([*argv, "a@example.com", "--email", "b@example.com"]) == 6
    assert capsys.readouterr().err == (
        "vouch: vouch admin invite needs one email, not two: EMAIL or --email EMAIL\n"
    )
    assert main([*argv, "a@example.com", "--email", "a@example.com"]) == 2  # the same: fine


def parsers_with_help(
    parser: argparse.ArgumentParser, name: str = "vouch"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """`parser` and every subcommand's, each with its command line ("vouch admin invite")."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers_with_help(sub, f"{name} {sub_name}")


def examples_in(epilog: str) -> list[str]:
    """The `vouch ...` command lines of an epilog's examples block, without the comments
    beside them (two spaces or more) or what a shell would do with their output."""
    block = epilog.split("examples:\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in block.splitlines() if line.startswith("  vouch ")]
    return [re.split(r"\s{2,}| > | \| ", line)[0] for line in lines]


def test_help_shows_examples_that_parse_as_written() -> None:
    parser = build_parser()
    with_examples = {
        name: examples_in(sub.epilog)
        for name, sub in parsers_with_help(parser)
        if sub.epilog and "examples:" in sub.epilog
    }
    for needed in (
        "vouch",
        "vouch login",
        "vouch status",
        "vouch admin invite",
        "vouch admin people",
    ):
        assert with_examples.get(needed), f"{needed} --help has no examples"
    for name, examples in with_examples.items():
        for example in examples:
            args = parser.parse_args(shlex.split(example)[1:])  # a stale example exits 6
            assert hasattr(args, "handler"), (name, example)
    assert (
        "vouch admin invite --email bob@example.com --json" in with_examples["vouch admin invite"]
    )


def test_admin_audit_sends_its_filters_and_shows_typed_values_and_the_next_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {
        "id": "1800000000000-0",
        "event": "exchange_issued",
        "ts": 1_800_000_000.5,
        "actor": "alice@example.com",
        "models": [HAIKU],
        "count": 3,
        "uv": True,
        "purpose": "two words",
    }
    with FakeBroker() as broker:
        saved_for(broker, tmp_path, monkeypatch)
        broker.answer(200, {"events": [event], "next": "1799999999999-18446744073709551615"})
        argv = ["admin", "audit", "--since", "2h", "--person", "alice@example.com"]
        assert main([*argv, "--agent", "researcher", "--limit", "1"]) == 0
        started = time.time()
        out = capsys.readouterr().out.splitlines()
        broker.answer(200, {"events": [event], "next": None})
        assert main(["admin", "audit", "--before", "5-0", "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
    [seen, second] = broker.seen
    since = float(seen.query.pop("since")[0])
    assert started - 7200 - 5 < since <= started - 7200
    assert seen.query == {
        "limit": ["1"],
        "person": ["alice@example.com"],
        "agent": ["researcher"],
    }
    assert second.query == {"limit": ["50"], "before": ["5-0"]}
    assert out[0].endswith(
        f'exchange_issued  alice@example.com            models=["{HAIKU}"] count=3 uv=true'
        ' purpose="two words"'
    )
    assert out[1] == "(more: add --before 1799999999999-18446744073709551615)"
    assert printed == {"events": [event], "next": None}


def test_admin_audit_refuses_a_since_that_is_no_duration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeBroker() as broker:
        saved_for(broker, tmp_path, monkeypatch)
        assert main(["admin", "audit", "--since", "yesterday"]) == 6
    assert capsys.readouterr().err == (
        "vouch: not a duration: 'yesterday' (use e.g. 2h, 90m, 1h30m or 3600)\n"
    )
    assert broker.seen == []


def test_admin_revoke_of_what_is_already_revoked_says_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    done = {"handle": "delegation", "value": "dlg_1", "revoked_at": 1_800_000_000.0}
    with FakeBroker() as broker:
        saved_for(broker, tmp_path, monkeypatch)
        broker.answer(200, {**done, "aws_sessions": "disabled", "already_revoked": True})
        assert main(["admin", "revoke", "--delegation", "dlg_1", "--no-wait"]) == 0
        broker.answer(200, {**done, "aws_sessions": "disabled", "already_revoked": False})
        assert main(["admin", "revoke", "--delegation", "dlg_1", "--no-wait"]) == 0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(1_800_000_000.0))
    first, second = capsys.readouterr().err.split("Revoked")
    assert first.startswith(f"delegation dlg_1 was already revoked at {stamp}; nothing changed.\n")
    assert second.startswith(" delegation dlg_1; enforced from the next request.\n")


@pytest.mark.parametrize("text", ["5", "5.00", "0.05", " 12.5 ", "0.000001"])
def test_budgets_people_type(text: str) -> None:
    assert parse_amount(text) == text.strip()


@pytest.mark.parametrize("bad", ["0", "0.00", "-1", "5e2", "$5", "5.0000001", "five", ""])
def test_other_budgets_are_config_errors(bad: str) -> None:
    with pytest.raises(vouch_delegate.ConfigError) as caught:
        parse_amount(bad)
    assert caught.value.detail == (
        f"--budget: not an amount: {bad!r} (use e.g. 5 or 5.00, at most six decimals)"
    )


def test_a_spent_budget_exits_5_and_says_how_much() -> None:
    spent = vouch_delegate.BudgetExceeded(
        "delegation revoked: it spent 5.0123 of its 5.00 budget",
        status=403,
        problem={"type": "urn:vouch:problem:budget-exceeded", "spent": "5.0123", "budget": "5.00"},
    )
    assert exit_code(spent) == 5
    err = io.StringIO()
    _report(spent, err, verbose=False)
    assert err.getvalue() == (
        "vouch: delegation revoked: it spent 5.0123 of its 5.00 budget\n"
        "vouch: budget spent: 5.0123 of 5.00; this delegation is revoked, ask its person for a"
        " new one\n"
    )
