"""`vouch-broker` commands that need no services: keys, policy check, aws-setup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.cli import main

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
    assert "ok (1 rules, 2 models)" in capsys.readouterr().out


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
    broker = plan["broker_policy"]
    assert broker["name"] == "vouch-broker-revocations"
    assert broker["document"]["Statement"] == [
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
        assert main(argv) == 1, argv
        assert "store" in capsys.readouterr().err.lower()
