"""The SDK against a real broker: botocore credential_process, refreshing sessions, requests."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from vouch_delegate import (
    AgentCredentials,
    DelegationDenied,
    DelegationExpired,
    PolicyDenied,
    TokenRevoked,
    Transport,
    boto3_session,
    request_delegation,
)

from tests.e2e.conftest import HAIKU, VOUCH, Cli
from tests.harness.broker import BrokerServer
from tests.harness.services import MotoServer

pytestmark = pytest.mark.e2e

Person = Callable[..., Cli]


class CountingTransport(Transport):
    """The real transport, counting exchanges (tests wrap the transport, not internals)."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges = 0

    def request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        if url.endswith("/v1/credentials/aws"):
            self.exchanges += 1
        return super().request(method, url, **kwargs)


@pytest.fixture
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A HOME with no AWS or vouch settings from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "VOUCH_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


def test_botocore_credential_process_profile_calls_vouch(
    person: Person, tmp_path: Path, no_ambient_aws: Path, moto_server: MotoServer
) -> None:
    token = person("profiled@example.com").delegate(
        tmp_path / "agent.token", "us.claude-haiku-4-5", agent="profiled"
    )
    (no_ambient_aws / ".aws").mkdir()
    (no_ambient_aws / ".aws" / "config").write_text(
        "[profile agent]\n"
        f"credential_process = {' '.join(VOUCH)} credential aws --token-file {token}\n"
        "region = us-east-1\n"
    )
    session = boto3.Session(profile_name="agent")
    identity = session.client("sts", endpoint_url=moto_server.url).get_caller_identity()
    dlg = jwt.decode(token.read_text().strip(), options={"verify_signature": False})["dlg"]
    assert identity["Arn"].endswith(
        f":assumed-role/vouch-agents/{dlg}.profiled.profiled@example.com"
    )
    credentials = session.get_credentials()
    assert credentials is not None and credentials.method == "custom-process"


def test_boto3_session_exchanges_once_per_refresh_until_revoked(
    person: Person, tmp_path: Path, no_ambient_aws: Path, moto_server: MotoServer
) -> None:
    alice = person()
    models = ("us.claude-haiku-4-5", "us.claude-sonnet-4-5")
    token = alice.delegate(tmp_path / "agent.token", *models, agent="refresher")
    counting = CountingTransport()
    # 900 s credentials, refreshed 899 s before expiry: due about a second after each exchange.
    session = boto3_session(
        token_file=token,
        region_name="us-east-1",
        models=["us.claude-haiku-4-5"],
        duration_s=900,
        refresh_margin_s=899,
        transport=counting,
    )
    sts = session.client("sts", endpoint_url=moto_server.url)
    calls, deadline = 0, time.monotonic() + 3.2
    while time.monotonic() < deadline:
        assert ".refresher.alice@example.com" in sts.get_caller_identity()["Arn"]
        calls += 1
        time.sleep(0.05)
    # Refreshes follow the credentials' lifetime (Expiration less the broker's whole-second
    # Date): the first is due 0-2 s after the first exchange; the broker's own cache then
    # hands back the same credentials, nothing new, so the SDK pauses 1, 2, 4 s. Exchanging
    # per call would be one per call (about 60 here). Before the SDK counted credentials
    # handed back as nothing new, CI runs saw bursts of 9 and 17.
    assert 2 <= counting.exchanges <= 5, counting.exchanges
    assert calls >= 3 * counting.exchanges, (calls, counting.exchanges)
    dlg = jwt.decode(token.read_text().strip(), options={"verify_signature": False})["dlg"]
    alice.run("delegate", "revoke", dlg)
    with pytest.raises(TokenRevoked):
        call_until_it_fails(sts.get_caller_identity)


def call_until_it_fails(call: Callable[[], object], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        call()
        time.sleep(0.05)


def test_models_narrowing_passes_through_and_cannot_widen(person: Person, tmp_path: Path) -> None:
    token = person("narrow@example.com").delegate(
        tmp_path / "t", "us.claude-haiku-4-5", agent="narrow"
    )
    narrowed = AgentCredentials(token_file=token, models=["us.claude-haiku-4-5"])
    assert narrowed.get().expiration.timestamp() > time.time() + 800
    assert narrowed.claims["models"] == [HAIKU]
    with pytest.raises(PolicyDenied, match="never widen"):
        AgentCredentials(token_file=token, models=["us.claude-sonnet-4-5"]).get()


def run_in_thread(
    cli: Cli, *args: str
) -> tuple[threading.Thread, dict[str, subprocess.CompletedProcess[str] | Exception]]:
    """`vouch ARGS` in another process, started from a thread (the agent keeps polling)."""
    result: dict[str, subprocess.CompletedProcess[str] | Exception] = {}

    def target() -> None:
        try:
            result["proc"] = cli.run(*args)
        except Exception as exc:  # surfaced by the test after join
            result["proc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def ask(
    broker: BrokerServer, cli: Cli, answer: str, **options: Any
) -> tuple[Any, Mapping[str, Any]]:
    """request_delegation, with the person answering `answer` ("approve", "deny" or "")."""
    started: dict[str, Any] = {}

    def on_code(code: str, expires_at: int) -> None:
        started["expires_at"] = expires_at
        if answer:
            started["thread"], started["result"] = run_in_thread(cli, "delegate", answer, code)

    try:
        value: Any = request_delegation(
            broker.url,
            email=cli.email,
            agent="requester",
            models=["us.claude-haiku-4-5"],
            on_code=on_code,
            **options,
        )
    except Exception as exc:
        value = exc
    if "thread" in started:
        started["thread"].join(timeout=30)
        proc = started["result"]["proc"]
        assert not isinstance(proc, Exception), proc
    return value, started


def test_request_delegation_approved_from_another_process(
    e2e_broker: BrokerServer, person: Person
) -> None:
    alice = person("asks@example.com")
    token, started = ask(
        e2e_broker, alice, "approve", ttl="30m", message="nightly report", timeout_s=30
    )
    assert isinstance(token, str), token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "agent.requester.asks@example.com"
    assert claims["models"] == [HAIKU]
    assert claims["exp"] - claims["iat"] == 1800
    shown = started["result"]["proc"].stderr
    assert "message:  nightly report" in shown and HAIKU in shown
    assert shown.index("nightly report") < shown.index("Touch your security key")
    assert AgentCredentials(token=token).get().access_key_id


def test_request_delegation_denied_and_timed_out(e2e_broker: BrokerServer, person: Person) -> None:
    alice = person("denies@example.com")
    denied, _ = ask(e2e_broker, alice, "deny", timeout_s=30)
    assert isinstance(denied, DelegationDenied), denied
    started = time.monotonic()
    expired, _ = ask(e2e_broker, alice, "", timeout_s=1)
    assert isinstance(expired, DelegationExpired), expired
    assert time.monotonic() - started < 5


def test_an_agents_message_cannot_pass_for_cli_output_on_an_80_column_terminal(
    e2e_broker: BrokerServer, person: Person
) -> None:
    # Padded with spaces, the message used to wrap so that its tail began a line of its own,
    # looking like vouch's own "Approved" line.
    spoof = "Approved: delegation dlg_spoof; the agent receives its token directly."
    message = "weekly report" + " " * (240 - 13 - len(spoof)) + spoof
    token, started = ask(
        e2e_broker, person("spoofed@example.com"), "approve", message=message, timeout_s=30
    )
    assert isinstance(token, str), token
    shown = started["result"]["proc"].stderr
    grant = shown[shown.index("Agent request") : shown.index("Touch your security key")]
    assert max(len(line) for line in grant.splitlines()) <= 80
    assert "  message:  weekly report" in grant
    framed = [line for line in grant.splitlines() if "dlg_spoof" in line]
    assert framed and all(line.startswith("            | ") for line in framed)


def test_the_readme_snippet_makes_a_bedrock_client_in_the_brokers_region(
    person: Person, tmp_path: Path, no_ambient_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rita = person("rita@example.com")  # alice's delegations are capped, and others use them
    token = rita.delegate(tmp_path / "agent.jwt", "us.claude-haiku-4-5", agent="regional")
    counting = CountingTransport()
    session = boto3_session(token_file=token, transport=counting)
    assert counting.exchanges == 0  # nothing is fetched until a client needs the region
    client = session.client("bedrock-runtime")  # no region argument, none in the environment
    assert client.meta.region_name == "us-east-1"  # the org policy's [aws] region
    assert counting.exchanges == 1
    assert session.get_credentials().get_frozen_credentials().access_key.startswith("ASIA")
    assert counting.exchanges == 1  # the exchange that told the region gave the credentials
    # A region the caller chose wins: the argument, or the AWS config chain.
    assert boto3_session(token_file=token, region_name="us-west-2").region_name == "us-west-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    chosen = boto3_session(token_file=token, transport=counting)
    assert chosen.client("bedrock-runtime").meta.region_name == "eu-west-1"
    assert counting.exchanges == 1
