"""Issue 15, done when: a person signs in with the software key, writes the profile, and the
real AWS CLI (`aws sts get-caller-identity --profile vouch`) and a boto3 session made with
`profile_name="vouch"` both get their own credentials, through the STS gate (AWS's checks in
front of the emulator), whose STS call carries the person's source identity and a session
policy with exactly the person's models, through the people role."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import VOUCH, Cli
from tests.harness.broker import BrokerServer, broker_settings, make_invite
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws
from tests.integration.test_exchange import HAIKU, OPUS, SONNET, invoke_allowed

pytestmark = pytest.mark.e2e

AWS_CLI = Path(sys.executable).with_name("aws")  # awscli, from the dev dependency group
PEOPLE_ROLE = "arn:aws:iam::123456789012:role/vouch-people"


@pytest.fixture
def gated_broker(tmp_path: Path, redis_url: str, sts_gate: StsGate) -> Iterator[BrokerServer]:
    """A broker whose STS is the gate, its roles made by aws-setup (as the dev stack does)."""
    settings = broker_settings(tmp_path / "broker", redis_url, aws={"endpoint_url": sts_gate.url})
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


def signed_in(broker: BrokerServer, home: Path, email: str) -> Cli:
    cli = Cli(broker, home, email)
    enroll = ("enroll", "--server", broker.url, "--email", email, "--code-file", "-")
    cli.run(*enroll, stdin=make_invite(broker.settings, email) + "\n")
    cli.run("login")
    return cli


def timed(cli: Cli, *args: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    cli.run(*args, extra_env=env)
    return time.perf_counter() - started


def test_the_aws_cli_and_a_boto3_profile_get_the_persons_own_credentials(
    gated_broker: BrokerServer,
    sts_gate: StsGate,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pat = signed_in(gated_broker, tmp_path / "pat", "pat@example.com")
    models = json.loads(pat.run("models", "--json").stdout)["models"]
    assert [(m["name"], m["use"], m["delegate"]) for m in models] == [
        ("us.claude-haiku-4-5", True, True),
        ("us.claude-sonnet-4-5", True, True),
    ]
    config = tmp_path / "aws" / "config"
    env = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no")}
    written = pat.run("aws-profile", "--endpoint-url", sts_gate.url, extra_env=env)
    assert f"profile vouch written to {config}" in written.stderr
    text = config.read_text()
    assert f"[profile vouch]\ncredential_process = {VOUCH[0]} credential aws\n" in text
    assert text.endswith(f"region = us-east-1\nendpoint_url = {sts_gate.url}\n")
    [call] = sts_gate.accepted  # aws-profile's one exchange (its region), now cached
    cli_env = {**pat.env, **env}
    cli_env.pop("VOUCH_PIN")  # the profile needs no PIN and no tap: the session does
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
    assert arn.endswith(":assumed-role/vouch-people/user.pat@example.com")
    # boto3, in this process, through the same profile (credential_process runs vouch).
    for name, value in {
        "HOME": str(pat.home),
        "XDG_CONFIG_HOME": str(pat.home / ".config"),
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("VOUCH_SERVER", "VOUCH_AGENT_TOKEN", "VOUCH_AGENT_TOKEN_FILE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    session = boto3.Session(profile_name="vouch")
    assert session.region_name == "us-east-1"
    caller = session.client("sts").get_caller_identity()
    assert caller["Arn"] == arn
    # What STS saw, once for all three (the local cache served the AWS CLI and boto3).
    assert len(sts_gate.accepted) == 1
    assert call.role_arn == PEOPLE_ROLE
    assert call.claims["sub"] == "user.pat@example.com"
    assert call.source_identity == "pat@example.com"
    assert call.tags["vouch:AccessType"] == "human"
    assert call.policy is not None
    assert invoke_allowed(call.policy, HAIKU) and invoke_allowed(call.policy, SONNET)
    assert not invoke_allowed(call.policy, OPUS)
    cached = list((pat.home / ".cache" / "vouch").iterdir())
    assert [p.stat().st_mode & 0o777 for p in cached] == [0o600]
    # Figures: one `vouch credential aws` that exchanges (a new request: narrowed), then
    # the same served from the local cache, measured in this run.
    narrowed = ("credential", "aws", "--model", "us.claude-haiku-4-5")
    uncached = timed(pat, *narrowed)
    hits = [timed(pat, *narrowed) for _ in range(5)]
    assert len(sts_gate.accepted) == 2
    print(
        f"\nvouch credential aws (a process each): exchanging {uncached * 1000:.0f} ms,"
        f" from the local cache median {statistics.median(hits) * 1000:.0f} ms"
    )
    # Logout ends it: the cache is gone and credential_process says to log in (exit 2).
    pat.run("logout")
    assert not list((pat.home / ".cache" / "vouch").iterdir())
    refused = pat.run("credential", "aws", code=2)
    assert refused.stdout == ""
    assert refused.stderr == (
        f"vouch: you signed out of {gated_broker.url}: run `vouch login`; for an agent's "
        "credentials: --token-file F, or set VOUCH_AGENT_TOKEN_FILE (or VOUCH_AGENT_TOKEN)\n"
    )
