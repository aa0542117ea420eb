# ruff: noqa: E501  (tables are compared whole, one line of text per row)
"""`vouch usage`: a person's own Bedrock use and their agents', as the CLI prints it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.harness.broker import BrokerServer, make_invite, private_broker
from tests.harness.services import MotoServer
from tests.unit.policies.invocation_records import AGENT_ARN, PERSON_ARN, record

pytestmark = pytest.mark.e2e


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs" / "AWSLogs" / "123456789012" / "BedrockModelInvocationLogs"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def usage_broker(tmp_path: Path, moto_server: MotoServer, logs: Path) -> Iterator[BrokerServer]:
    with private_broker(tmp_path / "b", moto_server.url, usage_source=str(logs)) as server:
        yield server


def signed_in(broker: BrokerServer, home: Path, email: str) -> Cli:
    cli = Cli(broker, home, email)
    enroll = ("enroll", "--server", broker.url, "--email", email, "--code-file", "-")
    cli.run(*enroll, stdin=make_invite(broker.settings, email) + "\n")
    cli.run("login")
    return cli


def test_vouch_usage_prints_the_persons_rows_as_a_table_and_as_json(
    usage_broker: BrokerServer, logs: Path, tmp_path: Path
) -> None:
    when = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        record(
            "a",
            timestamp=when,
            tokens_in=1234,
            tokens_out=0,
            model="anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        record("b", timestamp=when, arn=PERSON_ARN, tokens_in=1000, tokens_out=10),
        record("c", timestamp=when, arn=AGENT_ARN.replace("alice", "bob")),
    ]
    (logs / "records.json").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    alice = signed_in(usage_broker, tmp_path / "alice", "alice@example.com")
    out = alice.run("usage", "--since", "1h").stdout.splitlines()
    assert out[0].startswith("Bedrock usage of alice@example.com from ")
    assert out[1:] == [
        "DELEGATION            AGENT       RECORDS  INPUT  OUTPUT  CACHE READ  CACHE WRITE  COST (USD)  UNPRICED",
        "dlg_3kq0b4Y2m9T1xVwA  researcher        1   1234       0           0            0    0.003702         0",
        "-                     (self)            1   1000      10           0            0    0.001050         0",
        "TOTAL                                   2   2234      10           0            0    0.004752         0",
    ]
    data = json.loads(alice.run("usage", "--json").stdout)
    assert (data["email"], data["by"], data["total"]["cost"], len(data["rows"])) == (
        "alice@example.com",
        "delegation",
        "0.004752",
        2,
    )
    assert alice.run("usage", "--since", "1h", "--json").stdout.count('"cost"') == 3


def test_vouch_usage_on_a_broker_without_a_source_says_who_must_configure_it(
    person: Callable[..., Cli],
) -> None:
    failed = person("usage@example.com").run("usage", code=1)
    assert failed.stderr == (
        "vouch: usage reports are not configured on this broker: an operator sets "
        "usage_source (VOUCH_USAGE_SOURCE) to where Bedrock's model invocation logs are "
        "(docs/usage.md)\n"
    )
