"""`vouch-broker` commands that need no services: keys, policy check, aws-setup."""

from __future__ import annotations

import json
import os
import shlex
from importlib.metadata import version
from pathlib import Path

import pytest

from broker.cli import _shared_metrics, build_parser, main
from broker.settings import SettingsError

pytestmark = pytest.mark.unit


def test_keys_generate_rotate_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "generate", "--dir", str(keys)]) == 0
    first = capsys.readouterr().out.split()
    assert sorted(first[1::2]) == ["active", "next"]
    assert main(["keys", "rotate", "--dir", str(keys)]) == 0
    states = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert sorted(states) == ["active", "next", "retired"]
    assert main(["keys", "generate", "--dir", str(keys)]) == 6
    assert "already holds keys" in capsys.readouterr().err


def test_policy_check_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "org.toml"
    bad.write_text('admins = 3\n[aws]\naccount_id = "12"\n')
    assert main(["policy", "check", str(bad)]) == 6
    err = capsys.readouterr().err
    assert "4 problems" in err
    assert "aws.account_id" in err and "aws.region: missing" in err
    assert main(["policy", "check", "policies/examples/org.toml"]) == 0
    assert "ok (1 rules, 2 models; own use: 1 rules, 2 models)" in capsys.readouterr().out


def test_aws_setup_prints_provider_trust_and_permissions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOUCH_ISSUER", "https://vouch.example.com")
    monkeypatch.delenv("VOUCH_AWS_ENDPOINT_URL", raising=False)
    assert main(["aws-setup"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["oidc_provider"] == {
        "url": "https://vouch.example.com",
        "client_ids": ["sts.amazonaws.com"],
    }
    trust = plan["role"]["trust_policy"]["Statement"][0]
    assert trust["Principal"] == {
        "Federated": "arn:aws:iam::123456789012:oidc-provider/vouch.example.com"
    }
    assert trust["Condition"]["StringLike"] == {"vouch.example.com:sub": "agent.*"}
    assert set(trust["Action"]) == {
        "sts:AssumeRoleWithWebIdentity",
        "sts:TagSession",
        "sts:SetSourceIdentity",
    }
    assert plan["role"]["max_session_duration"] == 3600
    boundary = plan["role"]["permissions_boundary"]
    assert boundary["name"] == "vouch-agents-boundary"
    assert boundary["document"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "Resource": "*",
        }
    ]
    # The people role: the same provider, audience and actions, but only user.* subjects;
    # the models people may use themselves; its own max session; the same boundary.
    people = plan["people_role"]
    assert (people["name"], people["arn"]) == (
        "vouch-people",
        "arn:aws:iam::123456789012:role/vouch-people",
    )
    assert people["max_session_duration"] == 3600
    [own] = people["trust_policy"]["Statement"]
    assert own["Condition"]["StringLike"] == {"vouch.example.com:sub": "user.*"}
    assert own["Condition"]["StringEquals"] == trust["Condition"]["StringEquals"]
    assert (own["Principal"], set(own["Action"])) == (trust["Principal"], set(trust["Action"]))
    assert people["permissions_boundary"] == boundary
    assert people["permissions_policy"]["name"] == "vouch-bedrock-models"
    assert "claude-haiku-4-5" in json.dumps(people["permissions_policy"]["document"])
    broker = plan["broker_policy"]
    assert broker["name"] == "vouch-broker-revocations"
    assert broker["document"]["Statement"] == [
        {
            "Sid": "VouchRevocationsOnTheAgentsAndPeopleRoles",
            "Effect": "Allow",
            "Action": ["iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"],
            "Resource": [
                "arn:aws:iam::123456789012:role/vouch-agents",
                "arn:aws:iam::123456789012:role/vouch-people",
            ],
        }
    ]


def test_aws_setup_without_own_use_plans_the_agents_role_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    example = Path("policies/examples/org.toml").read_text()
    agents_only = tmp_path / "org.toml"
    agents_only.write_text(example.split("[[use]]")[0])
    monkeypatch.setenv("VOUCH_ISSUER", "https://vouch.example.com")
    monkeypatch.setenv("VOUCH_POLICY_FILE", str(agents_only))
    monkeypatch.delenv("VOUCH_AWS_ENDPOINT_URL", raising=False)
    assert main(["aws-setup"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["people_role"] is None
    assert plan["broker_policy"]["document"]["Statement"] == [
        {
            "Sid": "VouchRevocationsOnTheAgentsRole",
            "Effect": "Allow",
            "Action": ["iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"],
            "Resource": "arn:aws:iam::123456789012:role/vouch-agents",
        }
    ]


def test_aws_setup_refuses_an_http_issuer_for_real_aws(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOUCH_ISSUER", "http://localhost:8080")
    monkeypatch.delenv("VOUCH_AWS_ENDPOINT_URL", raising=False)
    assert main(["aws-setup"]) == 6
    assert "cannot be an IAM OIDC provider" in capsys.readouterr().err


def test_bad_settings_exit_6_with_every_problem(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOUCH_SESSION_TTL_S", "soon")
    monkeypatch.setenv("VOUCH_CHALLENGE_TTL_S", "x")
    assert main(["aws-setup"]) == 6
    err = capsys.readouterr().err
    assert "VOUCH_SESSION_TTL_S" in err and "VOUCH_CHALLENGE_TTL_S" in err


def test_keys_revoke_takes_kids_that_start_with_a_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kid is an RFC 7638 thumbprint in base64url: one in 64 starts with "-". Redis is
    # unreachable here, so the command must get as far as trying to record it, and stop.
    monkeypatch.setenv("VOUCH_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("VOUCH_REDIS_TIMEOUT_S", "0.2")
    dashed, plain = "-" + "O" * 42, "A" * 43
    for argv in (
        ["keys", "revoke", dashed, "--dir", str(tmp_path)],
        ["keys", "revoke", "--dir", str(tmp_path), dashed, plain],
        ["keys", "revoke", "--", dashed],
    ):
        assert main(argv) == 4, argv  # 4: a dependency unreachable, as in `vouch`
        assert "store" in capsys.readouterr().err.lower()


UNREACHABLE_REDIS = {"VOUCH_REDIS_URL": "redis://127.0.0.1:1/0", "VOUCH_REDIS_TIMEOUT_S": "0.2"}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_invite_answers_bad_input_and_an_unreachable_redis_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in UNREACHABLE_REDIS.items():
        monkeypatch.setenv(name, value)
    assert run(["invite", "not-an-email"], capsys) == (
        6,
        "vouch-broker: email: 'not-an-email' is not an email address\n",
    )
    assert run(["invite", "ann@example.com"], capsys) == (
        4,
        "vouch-broker: state store unavailable while creating an invite; "
        "nothing was changed or issued\n",
    )


def test_files_that_are_not_utf8_or_are_directories_are_named_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'# caf\xe9\nadmins = ["a@example.com"]\n')
    assert run(["policy", "check", str(latin1)], capsys) == (
        6,
        f"vouch-broker: {latin1}: 1 problem:\n  {latin1}: not UTF-8 text (byte 5)\n",
    )
    assert run(["--config", str(latin1), "invite", "ann@example.com"], capsys) == (
        6,
        f"invalid configuration:\n  - {latin1}: not UTF-8 text (byte 5)\n",
    )
    # A directory, or a file that is not there: what to pass instead, not a settings problem.
    assert run(["policy", "check", str(tmp_path)], capsys) == (
        6,
        f"vouch-broker policy check: {tmp_path} is a directory: pass the org policy's TOML "
        f"file (latin1.toml there), e.g. vouch-broker policy check {latin1}\n",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["policy", "check", str(empty)], capsys) == (
        6,
        f"vouch-broker policy check: {empty} is a directory: pass the org policy's TOML "
        f"file, e.g. vouch-broker policy check {empty / 'org.toml'}\n",
    )
    assert run(["policy", "check", str(empty / "org.toml")], capsys) == (
        6,
        f"vouch-broker policy check: no such file: {empty / 'org.toml'} (pass the org "
        "policy's TOML file)\n",
    )
    # serve reads the policy before it forks workers, so a bad one stops it in one place.
    monkeypatch.setenv("VOUCH_POLICY_FILE", str(latin1))
    assert run(["serve", "--port", "1"], capsys) == (
        6,
        f"vouch-broker: {latin1}: 1 problem:\n  {latin1}: not UTF-8 text (byte 5)\n",
    )


def test_aws_setup_apply_without_aws_credentials_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "VOUCH_AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOUCH_ISSUER", "https://vouch.example.com")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert run(["aws-setup", "--apply"], capsys) == (
        6,
        "vouch-broker aws-setup --apply: no AWS credentials found: set AWS_PROFILE (or "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) for an identity that may manage IAM, "
        "or run without --apply and create what it prints\n",
    )


def test_version_and_bad_arguments_use_the_vouch_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["--version"])
    assert shown.value.code == 0
    assert capsys.readouterr().out == f"vouch-broker {version('vouch-broker')}\n"
    with pytest.raises(SystemExit) as bad:
        main(["serve", "--port", "http"])
    assert bad.value.code == 6
    assert capsys.readouterr().err.endswith(
        "vouch-broker serve: argument --port: invalid int value: 'http'\n"
    )


def test_help_shows_examples_that_parse_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["--help"])
    assert shown.value.code == 0
    text = capsys.readouterr().out
    examples = [
        line.strip().split("  ")[0]
        for line in text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        if line.startswith("  vouch-broker ")
    ]
    assert len(examples) == 7
    assert "vouch-broker policy check /etc/vouch/org.toml" in examples
    parser = build_parser()
    for example in examples:
        args = parser.parse_args(shlex.split(example)[1:])  # exits 6 on a stale example
        assert callable(args.func), example
    assert "docs/configuration.md" in text and text.rstrip().endswith("settings, policy or input")


def test_serve_gives_its_workers_a_metrics_directory_of_their_own_and_removes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with _shared_metrics():
        shared = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert shared.is_dir() and list(shared.iterdir()) == []
        (shared / "counter_1.db").write_bytes(b"")
    assert not shared.exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_metrics_directory_that_cannot_be_used_is_a_settings_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(taken))
    with pytest.raises(SettingsError) as caught, _shared_metrics():
        pass
    assert caught.value.problems == [
        f"PROMETHEUS_MULTIPROC_DIR: the workers' metrics need a writable directory (File "
        f"exists: {taken}); set PROMETHEUS_MULTIPROC_DIR (or TMPDIR) to one"
    ]
