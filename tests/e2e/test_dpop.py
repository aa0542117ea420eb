"""Bound agent tokens end to end: separate processes for the agent, the person and a thief."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from tests.e2e.conftest import Cli, clean_env
from tests.harness.broker import BrokerServer
from tests.harness.services import MotoServer

pytestmark = pytest.mark.e2e

Person = Callable[..., Cli]

AGENT = r"""
import json, sys
import vouch_delegate

server, email, leak, sts_url = sys.argv[1:5]
token = vouch_delegate.request_delegation(
    server, email=email, agent="bound", models=["us.claude-haiku-4-5"],
    on_code=lambda code, _: print(code, flush=True), timeout_s=60,
)
with open(leak, "w") as f:  # the token escapes (a log, a notebook, a prompt-injected tool)
    f.write(token)
session = vouch_delegate.boto3_session(token=token, region_name="us-east-1")
arn = session.client("sts", endpoint_url=sts_url).get_caller_identity()["Arn"]
print(json.dumps({"arn": arn}), flush=True)
"""

THIEF = r"""
import json, sys, urllib.error, urllib.request
from vouch_delegate import AgentKey

server, leak = sys.argv[1:3]
token = open(leak).read().strip()
url = server + "/v1/credentials/aws"
answers = []
for proof in (None, AgentKey.generate().proof("POST", url, token)):
    headers = {"Authorization": ("DPoP " if proof else "Bearer ") + token}
    if proof:
        headers["DPoP"] = proof
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="POST", headers=headers))
        answers.append({"status": 200})
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        answers.append({"status": exc.code, "type": body["type"], "detail": body["detail"],
                        "challenge": exc.headers["WWW-Authenticate"]})
print(json.dumps(answers))
"""


def test_an_agents_bound_token_works_for_it_and_not_for_a_process_with_a_copy(
    e2e_broker: BrokerServer, person: Person, tmp_path: Path, moto_server: MotoServer
) -> None:
    alice = person()
    leak = tmp_path / "leaked.token"
    env = clean_env(tmp_path / "agent-home")
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, e2e_broker.url, alice.email, str(leak), moto_server.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        code = agent.stdout.readline().strip()
        approved = alice.run("delegate", "approve", code)
        out, err = agent.communicate(timeout=60)
    finally:
        agent.kill()
    assert agent.returncode == 0, err
    claims = jwt.decode(leak.read_text(), options={"verify_signature": False})
    assert json.loads(out)["arn"].endswith(
        f":assumed-role/vouch-agents/{claims['dlg']}.bound.alice@example.com"
    )
    jkt = claims["cnf"]["jkt"]
    # The person saw, and their tap signed, the key the token is bound to.
    assert f"  bound to the agent key {jkt}" in approved.stderr
    assert approved.stderr.index(jkt) < approved.stderr.index("Touch your security key")

    thief = subprocess.run(
        [sys.executable, "-c", THIEF, e2e_broker.url, str(leak)],
        env=clean_env(tmp_path / "thief-home"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    without, other_key = json.loads(thief.stdout)
    challenge = 'DPoP error="invalid_dpop_proof", algs="ES256 ES384 ES512 EdDSA"'
    assert without == {
        "status": 401,
        "type": "urn:vouch:problem:invalid-dpop-proof",
        "detail": "this token is bound to a key (cnf.jkt): send a DPoP proof of that key"
        " in the DPoP header",
        "challenge": challenge,
    }
    assert other_key == {
        "status": 401,
        "type": "urn:vouch:problem:invalid-dpop-proof",
        "detail": "the DPoP proof is signed by another key than the one this token is bound to",
        "challenge": challenge,
    }


def test_the_cli_binds_a_delegation_to_a_key_file_and_exchanges_with_it(
    person: Person, tmp_path: Path
) -> None:
    alice = person()
    key = tmp_path / "agent.key"
    created = alice.run("agent-key", "create", "--out", str(key))
    thumbprint = created.stdout.strip().splitlines()[-1]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    token = tmp_path / "agent.token"
    delegated = alice.run(
        "delegate", "--agent", "keyed", "--model", "us.claude-haiku-4-5",
        "--ttl", "1h", "--bind-key", thumbprint, "--out", str(token),
    )  # fmt: skip
    assert f"  bound to the agent key {thumbprint}" in delegated.stderr
    document = json.loads(
        alice.run("credential", "aws", "--token-file", str(token), "--key-file", str(key)).stdout
    )
    assert document["AccessKeyId"].startswith("ASIA")
    # Without the key, vouch says which key the token needs before asking the broker.
    missing = alice.run("credential", "aws", "--token-file", str(token), code=6)
    assert f"this agent token is bound to a key (thumbprint {thumbprint})" in missing.stderr
    key.chmod(0o644)
    loose = alice.run(
        "credential", "aws", "--token-file", str(token), "--key-file", str(key), code=6
    )
    assert f"key file {key} is accessible to group or others (mode 0644)" in loose.stderr
    key.chmod(0o600)
    profile = alice.run(
        "aws-profile", "keyed", "--token-file", str(token), "--key-file", str(key),
        extra_env={"AWS_CONFIG_FILE": str(tmp_path / "aws-config")},
    )  # fmt: skip
    assert f"--token-file {token} --key-file {key}" in profile.stderr
