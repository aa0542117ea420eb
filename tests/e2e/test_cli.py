"""The `vouch` CLI as people and scripts use it: a subprocess against a real broker."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from vouch_delegate import DelegationExpired, request_delegation
from vouch_delegate.authenticators import DEFAULT_PIN

from tests.e2e.conftest import HAIKU, SONNET, VOUCH, Cli
from tests.harness.broker import BrokerServer, make_invite
from tests.harness.services import MotoServer

pytestmark = pytest.mark.e2e

Person = Callable[..., Cli]
PROBLEM = "urn:vouch:problem:"
REPOSITORY = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_enroll_login_status_keep_the_session_private(person: Person) -> None:
    alice = person("alice@example.com")
    assert mode(alice.session_file) == 0o600
    saved = json.loads(alice.session_file.read_text())
    assert saved["email"] == "alice@example.com"
    status = alice.run("status", "--json")
    report = json.loads(status.stdout)
    assert report["signed_in"] is True
    assert report["email"] == "alice@example.com"
    assert report["server"] == alice.broker.url
    assert saved["token"] not in status.stdout + status.stderr
    assert "NOT a hardware security key" in alice.run("login").stderr


def test_delegate_shows_the_grant_before_the_tap_and_writes_the_token_0600(
    person: Person, tmp_path: Path
) -> None:
    alice = person()
    out = tmp_path / "agent.token"
    proc = alice.run(
        "delegate",
        "--agent",
        "researcher",
        "--model",
        "us.claude-haiku-4-5",
        "--model",
        "us.claude-sonnet-4-5",
        "--ttl",
        "90m",
        "--purpose",
        "e2e run",
        "--out",
        str(out),
    )
    assert proc.stdout == ""
    grant_at, tap_at = proc.stderr.index(SONNET), proc.stderr.index("Touch your security key")
    assert proc.stderr.index(HAIKU) < tap_at and grant_at < tap_at
    assert "lifetime: 1h30m, until about" in proc.stderr and "e2e run" in proc.stderr
    assert mode(out) == 0o600
    claims = jwt.decode(out.read_text().strip(), options={"verify_signature": False})
    assert claims["sub"] == "agent.researcher.alice@example.com"
    assert claims["models"] == [HAIKU, SONNET]
    assert claims["exp"] - claims["iat"] == 5400


def test_delegate_without_out_prints_the_token_once_on_stdout(person: Person) -> None:
    proc = person().run("delegate", "--agent", "printer", "--model", "us.claude-haiku-4-5")
    token = proc.stdout.strip()
    assert proc.stdout.count(token) == 1 and token.count(".") == 2
    assert jwt.decode(token, options={"verify_signature": False})["models"] == [HAIKU]


def test_credential_aws_and_exec_then_revoke_exits_5(person: Person, tmp_path: Path) -> None:
    alice = person()
    token_file = alice.delegate(tmp_path / "t", "us.claude-haiku-4-5", agent="exec-agent")
    proc = alice.run("credential", "aws", "--token-file", str(token_file))
    doc = json.loads(proc.stdout)
    assert set(doc) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    script = (
        "import json, os; "
        "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('AWS_')}))"
    )
    ran = alice.run("exec", "--token-file", str(token_file), "--", sys.executable, "-c", script)
    seen = json.loads(ran.stdout)
    assert seen["AWS_ACCESS_KEY_ID"] == doc["AccessKeyId"]
    assert seen["AWS_SESSION_TOKEN"] == doc["SessionToken"]
    assert seen["AWS_CREDENTIAL_EXPIRATION"] == doc["Expiration"]
    # The broker's region (the org policy's), unless the caller chose one.
    assert (seen["AWS_REGION"], seen["AWS_DEFAULT_REGION"]) == ("us-east-1", "us-east-1")
    for chosen in ({"AWS_REGION": "eu-west-1"}, {"AWS_DEFAULT_REGION": "eu-west-1"}):
        again = alice.run(
            "exec",
            "--token-file",
            str(token_file),
            "--",
            sys.executable,
            "-c",
            script,
            extra_env=chosen,
        )
        regions = {k: v for k, v in json.loads(again.stdout).items() if "REGION" in k}
        assert regions == chosen
    failing = [sys.executable, "-c", "raise SystemExit(7)"]
    alice.run("exec", "--token-file", str(token_file), "--", *failing, code=7)
    dlg = jwt.decode(token_file.read_text().strip(), options={"verify_signature": False})["dlg"]
    listed = json.loads(alice.run("delegate", "list", "--json").stdout)
    assert dlg in {d["id"] for d in listed["delegations"]}
    alice.run("delegate", "revoke", dlg)
    refused = alice.run("credential", "aws", "--token-file", str(token_file), code=5)
    assert refused.stdout == ""
    assert refused.stderr.startswith("vouch: token revoked")


def test_admin_invites_and_revokes_and_others_are_denied(person: Person, tmp_path: Path) -> None:
    admin, alice = person("admin@example.com"), person()
    invited = admin.run("admin", "invite", "bob@example.com")
    code = invited.stdout.split()[-1]
    assert "invite bob@example.com" in invited.stderr  # what the tap signs, shown before it
    assert invited.stderr.index("invite bob@example.com") < invited.stderr.index("Touch")
    bob = Cli(admin.broker, tmp_path / "bob", "bob@example.com")
    enrolled = bob.run("enroll", "--server", admin.broker.url, "--email", bob.email, "--code", code)
    assert "--code puts the invite code in the process list" in enrolled.stderr
    bob.run("login", "--json")
    denied = alice.run("admin", "invite", "eve@example.com", code=5)
    assert "admin" in denied.stderr
    bob_token = bob.delegate(tmp_path / "bob.token", "us.claude-haiku-4-5", agent="helper")
    bob.run("credential", "aws", "--token-file", str(bob_token))
    admin.run("admin", "revoke", "--agent", "agent.helper.bob@example.com", "--reason", "e2e")
    bob.run("credential", "aws", "--token-file", str(bob_token), code=5)
    events = json.loads(admin.run("admin", "audit", "--limit", "20", "--json").stdout)["events"]
    assert any(e["event"] == "revoked" and e.get("reason") == "e2e" for e in events)


def test_not_signed_in_exits_2_and_bad_configuration_exits_6(
    person: Person, tmp_path: Path
) -> None:
    alice = person()
    stranger = Cli(alice.broker, tmp_path / "stranger", "stranger@example.com")
    stranger.run("status", code=2)
    stranger.run("delegate", "list", "--server", alice.broker.url, code=2)
    stranger.run("delegate", "--agent", "x", code=6)
    stranger.run("frobnicate", code=6)
    loose = tmp_path / "loose.token"
    alice.delegate(loose, "us.claude-haiku-4-5", agent="loose")
    loose.chmod(0o644)
    refused = alice.run("credential", "aws", "--token-file", str(loose), code=6)
    assert "chmod 600" in refused.stderr
    alice.run("logout")
    alice.run("status", code=2)
    alice.run("login")


def test_exec_hands_the_child_no_vouch_setting_token_or_pin(person: Person, tmp_path: Path) -> None:
    alice = person()
    token_file = alice.delegate(tmp_path / "t", "us.claude-haiku-4-5", agent="exec-env")
    token = token_file.read_text().strip()
    dump = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]
    by_file = {"VOUCH_AGENT_TOKEN_FILE": str(token_file), "VOUCH_SERVER": alice.broker.url}
    by_value = {"VOUCH_AGENT_TOKEN": token}
    for extra in (by_file, by_value):
        ran = alice.run("exec", "--", *dump, extra_env=extra)
        seen = json.loads(ran.stdout)
        # A prompt-injected agent that dumps its environment leaks 15-minute credentials,
        # not the refreshable token, its file, or the key's PIN.
        assert sorted(k for k in seen if k.startswith("VOUCH_")) == []
        assert token not in ran.stdout and str(token_file) not in ran.stdout
        assert seen["AWS_ACCESS_KEY_ID"].startswith("ASIA")
        assert seen["HOME"] == str(alice.home)  # everything else is passed on unchanged


def test_delegate_checks_the_out_path_before_the_tap(person: Person, tmp_path: Path) -> None:
    alice = person()
    listed = json.loads(alice.run("delegate", "list", "--json").stdout)["delegations"]
    taken = tmp_path / "taken"
    taken.mkdir()
    too_long = tmp_path / ("t" * 250)  # a legal name, but no room for the temporary file
    for out, why in ((taken, f"--out: {taken} is a directory"), (too_long, "File name too long")):
        args = ("delegate", "--agent", "out-check", "--model", "us.claude-haiku-4-5")
        refused = alice.run(*args, "--out", str(out), code=6)
        assert why in refused.stderr
        assert "Touch your security key" not in refused.stderr  # no tap spent
    assert json.loads(alice.run("delegate", "list", "--json").stdout)["delegations"] == listed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_session_lives_in_the_os_keyring_where_there_is_one(
    e2e_broker: BrokerServer, tmp_path: Path
) -> None:
    bob = Cli(e2e_broker, tmp_path / "bob", "bob.keyring@example.com")
    keyring_file = tmp_path / "keyring.json"
    bob.env.update(
        PYTHON_KEYRING_BACKEND="tests.harness.file_keyring.FileKeyring",
        PYTHONPATH=str(REPOSITORY),
        TEST_KEYRING_FILE=str(keyring_file),
    )
    code = make_invite(e2e_broker.settings, bob.email)
    enroll = ("enroll", "--server", e2e_broker.url, "--email", bob.email, "--code-file", "-")
    bob.run(*enroll, stdin=code + "\n")
    bob.run("login")
    token = json.loads(keyring_file.read_text())[f"vouch {e2e_broker.url}"]
    assert token.count(".") == 2
    assert token not in bob.session_file.read_text()
    status = bob.run("status")
    assert "kept in:     the OS keyring (file keyring FileKeyring)" in status.stdout
    assert json.loads(bob.run("status", "--json").stdout)["session_store"] == "keyring"
    bob.run("delegate", "list")  # the session is read back from the keyring
    bob.run("logout")
    assert json.loads(keyring_file.read_text()) == {}
    bob.run("status", code=2)


def test_without_a_keyring_the_session_falls_back_to_the_0600_file(person: Person) -> None:
    # keyring resolves for real here: the test machine, like a server, has no keyring.
    alice = person()
    saved = json.loads(alice.session_file.read_text())
    assert saved["token_store"] == "file" and saved["token"].count(".") == 2
    assert mode(alice.session_file) == 0o600
    report = json.loads(alice.run("status", "--json").stdout)
    assert report["session_store"] == "file"
    assert f"kept in:     {alice.session_file} (mode 0600; no usable OS keyring here)" in (
        alice.run("status").stdout
    )


def test_delegate_requests_lists_what_agents_asked_then_deny_clears_it(person: Person) -> None:
    alice = person()
    message = 'weekly "digest" \\ caf\u00e9'
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.5")) as stranger:
        asked = stranger.post(
            f"http://127.0.0.1:{alice.broker.port}/v1/delegation-requests",
            json={
                "email": alice.email,
                "agent": "stranger",
                "models": ["us.claude-haiku-4-5"],
                "ttl_s": 1800,
                "message": message,
            },
        )
    assert asked.status_code == 201, asked.text
    code = asked.json()["user_code"]
    listed = json.loads(alice.run("delegate", "requests", "--json").stdout)["requests"]
    [mine] = [r for r in listed if r["user_code"] == code]
    assert mine["created_at"] <= time.time() < mine["expires_at"]
    assert {k: v for k, v in mine.items() if k not in ("created_at", "expires_at")} == {
        "user_code": code,
        "agent": "stranger",
        "models": [HAIKU],
        "ttl_s": 1800,
        "message": message,
        "address": "127.0.0.5",
    }
    shown = alice.run("delegate", "requests")
    block = shown.stdout[shown.stdout.index(code) :].split("\n\n")[0]
    assert block.splitlines()[0].startswith(f"{code}  asked ")
    assert " ago from 127.0.0.5 (expires in " in block
    assert "  agent:    stranger" in block and f"  models:   {HAIKU}" in block
    assert "  lifetime: 30m" in block
    assert (
        '  message (the agent\'s words, not the broker\'s): "weekly \\"digest\\" \\\\ caf\u00e9"'
    ) in block
    assert "vouch delegate deny CODE" in shown.stderr
    alice.run("delegate", "deny", code)
    after = json.loads(alice.run("delegate", "requests", "--json").stdout)["requests"]
    assert code not in {r["user_code"] for r in after}


def test_logout_ends_the_session_at_the_broker_and_status_says_signed_out(
    person: Person, tmp_path: Path
) -> None:
    carol = Cli(person().broker, tmp_path / "carol", "carol@example.com")
    code = make_invite(carol.broker.settings, carol.email)
    carol.run("enroll", "--server", carol.broker.url, "--email", carol.email, stdin=code)
    carol.run("login")
    token = json.loads(carol.session_file.read_text())["token"]
    out = carol.run("logout")
    assert "the session no longer works anywhere" in out.stderr
    with carol.broker.client(token) as http:  # a copy taken before the logout
        refused = http.get("/v1/delegations")
    assert (refused.status_code, refused.json()["type"]) == (401, PROBLEM + "token-revoked")
    status = carol.run("status", code=2)
    assert status.stdout.startswith(f"signed out of {carol.broker.url} at ")
    assert json.loads(carol.run("status", "--json", code=2).stdout)["signed_out_at"] > 0


def test_enroll_reads_the_code_from_a_file_or_stdin_never_needing_it_on_the_command_line(
    person: Person, tmp_path: Path
) -> None:
    broker = person().broker
    dave = Cli(broker, tmp_path / "dave", "dave@example.com")
    code_file = tmp_path / "invite.txt"
    code_file.write_text(make_invite(broker.settings, dave.email) + "\n")
    enroll = ("enroll", "--server", broker.url, "--email", dave.email)
    done = dave.run(*enroll, "--code-file", str(code_file))
    assert "process list" not in done.stderr
    erin = Cli(broker, tmp_path / "erin", "erin@example.com")
    piped = make_invite(broker.settings, erin.email)
    erin.run("enroll", "--server", broker.url, "--email", erin.email, stdin=piped + "\n")
    erin.run("login")
    nothing = Cli(broker, tmp_path / "frank", "frank@example.com")
    refused = nothing.run("enroll", "--server", broker.url, "--email", nothing.email, code=6)
    assert "no invite code" in refused.stderr


def test_status_lists_every_key_with_when_and_how_it_was_added(
    person: Person, tmp_path: Path
) -> None:
    broker = person().broker
    gina = Cli(broker, tmp_path / "gina", "gina@example.com")
    code = make_invite(broker.settings, gina.email)
    gina.run("enroll", "--server", broker.url, "--email", gina.email, stdin=code)
    gina.run("login")
    spare = f"soft:{tmp_path / 'gina-spare.json'}"
    added = gina.run(
        "enroll", "--add-key", "--authenticator", spare, "--approve-with", f"soft:{gina.key_file}"
    )
    assert "add a new security key to gina@example.com" in added.stderr
    report = json.loads(gina.run("status", "--json").stdout)
    keys = report["keys"]
    assert [k["via"] for k in keys] == ["invite", "key"]
    assert keys[1]["approved_by"] == keys[0]["cid"]
    text = gina.run("status").stdout
    assert "keys:        2 (check that you added every one)" in text
    assert f"approved by key {keys[0]['cid']}" in text and "with an invite" in text


def test_admin_lists_and_cancels_invites_and_reinstates_with_a_tap(
    person: Person, tmp_path: Path
) -> None:
    admin = person("admin@example.com")
    invited = json.loads(admin.run("admin", "invite", "henry@example.com", "--json").stdout)
    listed = json.loads(admin.run("admin", "invites", "--json").stdout)["invites"]
    assert invited["id"] in {i["id"] for i in listed}
    assert invited["code"] not in json.dumps(listed)
    admin.run("admin", "cancel-invite", invited["id"])
    henry = Cli(admin.broker, tmp_path / "henry", "henry@example.com")
    refused = henry.run(
        "enroll",
        "--server",
        admin.broker.url,
        "--email",
        henry.email,
        stdin=invited["code"],
        code=5,
    )
    assert "invite code is unknown" in refused.stderr
    ivan = person("ivan@example.com")
    admin.run("admin", "revoke", "--user", ivan.email)
    again = admin.run("admin", "reinstate", ivan.email)
    assert f"reinstate {ivan.email}" in again.stderr
    events = json.loads(admin.run("admin", "audit", "--limit", "50", "--json").stdout)["events"]
    assert any(e["event"] == "reinstated" and e["subject"] == ivan.email for e in events)


def test_admin_lists_people_with_their_state_and_keys_and_pages_on(person: Person) -> None:
    admin = person("admin@example.com")
    kim, lee = person("kim.people@example.com"), person("lee.people@example.com")
    admin.run("admin", "revoke", "--user", lee.email, "--no-wait")
    listed = json.loads(admin.run("admin", "people", "--limit", "500", "--json").stdout)
    assert listed["next"] is None
    people = {p["email"]: p for p in listed["people"]}
    assert list(people) == sorted(people)
    assert people[kim.email]["state"] == "active"
    assert people[kim.email]["keys"] == {"active": 1}
    assert people[lee.email]["state"] == "revoked"
    assert people[lee.email]["keys"] == {"revoked": 1}
    assert time.time() + 1 >= people[lee.email]["since"] > time.time() - 600
    one = admin.run("admin", "people", "--limit", "1", "--after", kim.email).stdout.splitlines()
    after_kim = [e for e in people if e > kim.email]
    assert one[0].split()[:2] == [after_kim[0], people[after_kim[0]]["state"]]
    assert one[1:] == ([f"(more: add --after {after_kim[0]})"] if after_kim[1:] else [])
    row = next(r for r in admin.run("admin", "people").stdout.splitlines() if lee.email in r)
    assert row.split()[1] == "revoked" and row.endswith("keys: 1 revoked")
    denied = kim.run("admin", "people", code=5)
    assert denied.stderr == "vouch: this needs an admin named in the org policy\n"


NO_TERMINAL = (
    "vouch: the security key needs its PIN and there is no terminal to ask for it: "
    "set VOUCH_PIN (the software key's PIN is 123456), or run vouch in a terminal\n"
)


def without_terminal(cli: Cli, *args: str, pin: str | None = None) -> tuple[int, str]:
    """`vouch ARGS` with stdin from /dev/null, no controlling terminal, VOUCH_PIN `pin`
    (unset when None): its exit code and the stderr lines after the software-key banner."""
    env = {k: v for k, v in cli.env.items() if k != "VOUCH_PIN"}
    if pin is not None:
        env["VOUCH_PIN"] = pin
    proc = subprocess.run(
        [*VOUCH, *args],
        stdin=subprocess.DEVNULL,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,  # no /dev/tty for getpass to fall back on
    )
    after_banner = [line for line in proc.stderr.splitlines(keepends=True) if "!!" not in line]
    return proc.returncode, "".join(after_banner)


def test_no_pin_and_no_terminal_fail_in_one_line_with_exit_6(
    person: Person, tmp_path: Path
) -> None:
    alice = person("nora@example.com")  # not capped by other tests' delegations
    assert without_terminal(alice, "login") == (6, NO_TERMINAL)
    delegate = ("delegate", "--agent", "a", "--model", "us.claude-haiku-4-5")
    code, err = without_terminal(alice, *delegate)
    assert (code, err.splitlines(keepends=True)[-1]) == (6, NO_TERMINAL)
    assert "Warning" not in err and "EOFError" not in err
    empty = "vouch: VOUCH_PIN is empty: set it to the security key's PIN, or unset it to be asked\n"
    assert without_terminal(alice, "login", pin="") == (6, empty)
    newcomer = Cli(alice.broker, tmp_path / "nina", "nina@example.com")
    code_file = tmp_path / "code"
    code_file.write_text(make_invite(alice.broker.settings, newcomer.email) + "\n")
    enroll = ("enroll", "--server", alice.broker.url, "--email", newcomer.email)
    code, err = without_terminal(newcomer, *enroll, "--code-file", str(code_file))
    assert (code, err.splitlines(keepends=True)[-1]) == (6, NO_TERMINAL)


def test_delegate_approve_without_a_terminal_says_how_to_give_the_pin(
    e2e_broker: BrokerServer, person: Person
) -> None:
    alice = person("nora@example.com")  # not capped by other tests' delegations
    answers: list[tuple[int, str]] = []

    def on_code(code: str, expires_at: int) -> None:
        answers.append(without_terminal(alice, "delegate", "approve", code))

    with pytest.raises(DelegationExpired):
        request_delegation(
            e2e_broker.url,
            email=alice.email,
            agent="requester",
            models=["us.claude-haiku-4-5"],
            on_code=on_code,
            timeout_s=1,
        )
    code, err = answers[0]
    assert (code, err.splitlines(keepends=True)[-1]) == (6, NO_TERMINAL)


def test_a_wrong_pin_exits_7_and_says_how_many_tries_are_left(person: Person) -> None:
    bob = person("bob@example.com")
    assert without_terminal(bob, "login", pin="000000") == (
        7,
        "vouch: wrong PIN: 7 tries left before the key blocks its PIN\n",
    )
    assert without_terminal(bob, "login", pin="000000")[1].startswith("vouch: wrong PIN: 6 tries")
    assert without_terminal(bob, "login", pin=DEFAULT_PIN)[0] == 0  # the count resets


AWS_CLI = Path(sys.executable).with_name("aws")  # awscli, from the dev dependency group


def test_aws_profile_writes_a_profile_the_real_aws_cli_uses(
    person: Person, tmp_path: Path, moto_server: MotoServer
) -> None:
    pat = person("pat@example.com")  # alice's delegations are capped, and others use them
    token = pat.delegate(tmp_path / "agent.jwt", "us.claude-haiku-4-5", agent="aws-cli")
    config = tmp_path / "aws" / "config"
    config.parent.mkdir()
    config.write_text("# mine\n[profile other]\nregion = eu-west-1\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no")}
    write = ("aws-profile", "--token-file", str(token), "--endpoint-url", moto_server.url)
    written = pat.run(*write, extra_env=env)
    assert f"profile vouch written to {config}" in written.stderr
    assert pat.run(*write, extra_env=env).stderr.startswith(f"profile vouch already in {config}")
    text = config.read_text()
    assert text.startswith("# mine\n[profile other]\nregion = eu-west-1\n\n[profile vouch]\n")
    assert f"credential_process = {VOUCH[0]} credential aws --token-file {token}\n" in text
    assert text.endswith(f"region = us-east-1\nendpoint_url = {moto_server.url}\n")
    cli_env = {**pat.env, **env}
    cli_env.pop("VOUCH_PIN")  # the profile needs no PIN, no session, no VOUCH_* at all
    identity = subprocess.run(
        [str(AWS_CLI), "sts", "get-caller-identity", "--profile", "vouch", "--output", "json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert identity.returncode == 0, identity.stderr
    arn = json.loads(identity.stdout)["Arn"]
    dlg = jwt.decode(token.read_text().strip(), options={"verify_signature": False})["dlg"]
    assert arn.endswith(f":assumed-role/vouch-agents/{dlg}.aws-cli.pat@example.com")
    region = subprocess.run(
        [str(AWS_CLI), "configure", "get", "region", "--profile", "vouch"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert region.stdout == "us-east-1\n"


def test_list_and_status_count_only_active_delegations_and_say_who_revoked_the_rest(
    person: Person, tmp_path: Path
) -> None:
    admin, dora = person("admin@example.com"), person("dora@example.com")
    tokens = {
        agent: dora.delegate(tmp_path / agent, "us.claude-haiku-4-5", agent=agent)
        for agent in ("kept", "dropped", "banned")
    }
    ids = {
        agent: jwt.decode(path.read_text().strip(), options={"verify_signature": False})["dlg"]
        for agent, path in tokens.items()
    }
    dora.run("delegate", "revoke", ids["dropped"], "--no-wait")
    banned = "agent.banned.dora@example.com"
    admin.run("admin", "revoke", "--agent", banned, "--reason", "leaked in CI", "--no-wait")
    assert json.loads(dora.run("status", "--json").stdout)["active_delegations"] == 1
    assert "delegations: 1 active" in dora.run("status").stdout
    active = dora.run("delegate", "list").stdout.splitlines()
    assert active[0].split() == ["ID", "AGENT", "STATE", "UNTIL", "MODELS"]
    assert len(active) == 2 and active[1].split()[:3] == [ids["kept"], "kept", "active"]
    every = dora.run("delegate", "list", "--all").stdout
    assert every.count("\ndlg_") == 3
    assert every.count(" left)") == 1  # only the active one has time left
    assert (
        "revoked (this delegation) at " in every
        and 'by dora@example.com: "revoked by user"' in every
    )
    assert "revoked (its agent) at " in every and 'by admin@example.com: "leaked in CI"' in every
    listed = json.loads(dora.run("delegate", "list", "--all", "--json").stdout)["delegations"]
    states = {d["id"]: (d["state"], d["revoked_handle"], d["revoked_by"]) for d in listed}
    assert states == {
        ids["kept"]: ("active", None, None),
        ids["dropped"]: ("revoked", "delegation", "dora@example.com"),
        ids["banned"]: ("revoked", "agent", "admin@example.com"),
    }
    only_active = json.loads(dora.run("delegate", "list", "--json").stdout)["delegations"]
    assert [d["id"] for d in only_active] == [ids["kept"]]


def test_json_failures_are_problem_documents_with_the_brokers_members_and_exit_code(
    person: Person, tmp_path: Path
) -> None:
    # A person of its own: alice's delegations reach the org policy's cap when all run.
    alice = person("json-problems@example.com")
    denied = alice.run("admin", "invite", "eve@example.com", "--json", code=5)
    assert json.loads(denied.stdout) == {
        "type": PROBLEM + "permission-denied",
        "title": "Permission denied",
        "status": 403,
        "detail": "this needs an admin named in the org policy",
        "instance": "/v1/admin/invites/begin",
        "exit_code": 5,
    }
    assert denied.stderr == "vouch: this needs an admin named in the org policy\n"
    # The broker's validation, in its plain words, through the CLI (6: fix the arguments).
    args = ("delegate", "--agent", "too-long", "--model", "us.claude-haiku-4-5", "--ttl", "30d")
    refused = alice.run(*args, "--json", code=6)
    assert json.loads(refused.stdout) == {
        "type": PROBLEM + "invalid-request",
        "title": "Invalid request",
        "status": 400,
        "detail": "ttl_s must be at most 604800 seconds (7 days)",
        "instance": "/v1/delegations/begin",
        "errors": [
            {
                "message": "ttl_s must be at most 604800 seconds (7 days)",
                "key": "ttl_s",
                "source": "body",
            }
        ],
        "exit_code": 6,
    }
    assert refused.stderr.endswith("vouch: ttl_s must be at most 604800 seconds (7 days)\n")
    token_file = alice.delegate(tmp_path / "t", "us.claude-haiku-4-5", agent="json-revoked")
    dlg = jwt.decode(token_file.read_text().strip(), options={"verify_signature": False})["dlg"]
    alice.run("delegate", "revoke", dlg, "--no-wait")
    revoked = alice.run("credential", "aws", "--token-file", str(token_file), "--json", code=5)
    problem = json.loads(revoked.stdout)
    assert problem == {
        "type": PROBLEM + "token-revoked",
        "title": "Token revoked",
        "status": 401,
        "detail": "token revoked: its delegation was revoked",
        "instance": "/v1/credentials/aws",
        "handle": "delegation",
        "exit_code": 5,
    }


def test_admin_invite_takes_email_as_enroll_spells_it(person: Person) -> None:
    admin = person("admin@example.com")
    invited = admin.run("admin", "invite", "--email", "carol@example.com", "--json")
    invite = json.loads(invited.stdout)
    assert invite["email"] == "carol@example.com" and len(invite["code"]) > 8
    assert "invite carol@example.com" in invited.stderr  # the tap signed that address
