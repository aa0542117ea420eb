"""Usage from the emulator's S3 and CloudWatch Logs, and GET /v1/usage for a real delegation.

Records are written where Bedrock writes them (gzipped JSON lines under the S3 prefix's
dated folders; events on the log group's `aws/bedrock/modelinvocations` stream); the
session ARN in them is the one STS (moto behind the gate) gave the agent's credentials.
"""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from broker.settings import AwsSettings
from broker.usage_sources import SourceError, read
from policies.invocation_log import STREAM, InvocationRecord, parse_all
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human, person_at
from tests.harness.services import MotoServer
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import make_invite, wire_aws
from tests.unit.policies.invocation_records import PERSON_ARN, record

pytestmark = pytest.mark.integration


HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for the emulator (any will do), for the readers and the broker."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ids(blobs: Iterator[bytes]) -> list[str]:
    return sorted(r.request_id for r in parse_all(blobs) if isinstance(r, InvocationRecord))


def put_events(moto: MotoServer, group: str, records: list[dict[str, object]]) -> None:
    logs = boto3.client("logs", endpoint_url=moto.url, region_name="us-east-1")
    try:
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=STREAM)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    events = [
        {
            "timestamp": int(datetime.fromisoformat(str(r["timestamp"])).timestamp() * 1000),
            "message": json.dumps(r),
        }
        for r in records
    ]
    logs.put_log_events(logGroupName=group, logStreamName=STREAM, logEvents=events)


def test_s3_objects_gzipped_under_dated_prefixes_are_read(
    moto_server: MotoServer, aws_env: None
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    bucket = f"logs-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    now = datetime.now(UTC)
    base = "bedrock/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1"
    for hour in range(3):
        lines = [json.dumps(record(f"s3-{hour}-{i}", timestamp=stamp(now))) for i in range(2)]
        key = f"{base}/{now:%Y/%m/%d}/{hour:02d}/20261130T{hour:02d}0000Z_{hour}.json.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress("\n".join(lines).encode()))
    s3.put_object(Bucket=bucket, Key="bedrock/amazon-bedrock-logs-permission-check", Body=b"ok")
    s3.put_object(Bucket=bucket, Key="elsewhere/x.json.gz", Body=gzip.compress(b"{}"))
    aws = AwsSettings(endpoint_url=moto_server.url)
    start, end = now - timedelta(hours=1), now + timedelta(minutes=1)
    found = ids(read(f"s3://{bucket}/bedrock/", start=start, end=end, aws=aws))
    assert found == [f"s3-{h}-{i}" for h in range(3) for i in range(2)]
    # Objects written before the range starts hold no record of it: not even fetched.
    later = now + timedelta(minutes=5)
    assert ids(read(f"s3://{bucket}/bedrock/", start=later, end=later, aws=aws)) == []
    with pytest.raises(SourceError, match=r"AWS refused: NoSuchBucket"):
        list(read(f"s3://{bucket}-missing/x", start=start, end=end, aws=aws))


def test_s3_lists_past_one_page(moto_server: MotoServer, aws_env: None) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    bucket = f"many-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    now = datetime.now(UTC)
    for i in range(1005):  # list_objects_v2 pages hold 1,000 keys
        s3.put_object(
            Bucket=bucket,
            Key=f"p/{i:04d}.json",
            Body=json.dumps(record(f"m{i:04d}", timestamp=stamp(now))).encode(),
        )
    aws = AwsSettings(endpoint_url=moto_server.url)
    found = ids(
        read(
            f"s3://{bucket}/p",
            start=now - timedelta(hours=1),
            end=now + timedelta(hours=1),
            aws=aws,
        )
    )
    assert len(found) == 1005 and found[0] == "m0000" and found[-1] == "m1004"


def test_cloudwatch_events_in_the_range_are_read_page_by_page(
    moto_server: MotoServer, aws_env: None
) -> None:
    group = f"invocations-{secrets.token_hex(4)}"
    now = datetime.now(UTC).replace(microsecond=0)
    recent = [record(f"cw-{i}", timestamp=stamp(now - timedelta(seconds=i))) for i in range(30)]
    old = [record("cw-old", timestamp=stamp(now - timedelta(days=2)))]
    put_events(moto_server, group, old + sorted(recent, key=lambda r: str(r["timestamp"])))
    aws = AwsSettings(endpoint_url=moto_server.url, invocation_log_group=group)
    start, end = now - timedelta(hours=1), now + timedelta(minutes=1)
    assert ids(read("cloudwatch", start=start, end=end, aws=aws)) == sorted(
        f"cw-{i}" for i in range(30)
    )
    assert ids(read(f"cloudwatch:{group}", start=start, end=end, aws=aws)) == sorted(
        f"cw-{i}" for i in range(30)
    )
    with pytest.raises(SourceError, match=r"AWS refused: ResourceNotFoundException"):
        list(read("cloudwatch:no-such-group", start=start, end=end, aws=aws))


def test_without_credentials_the_source_says_so(moto_server: MotoServer) -> None:
    now = datetime.now(UTC)
    aws = AwsSettings(endpoint_url=moto_server.url)
    with pytest.raises(SourceError, match="no AWS credentials found"):
        list(read("cloudwatch", start=now, end=now, aws=aws))


# --- GET /v1/usage over a real delegation's session ---------------------------------------------


@pytest.fixture
def usage_broker(
    tmp_path: Path, redis_url: str, sts_gate: StsGate, aws_env: None
) -> Iterator[tuple[BrokerServer, str]]:
    group = f"invocations-{secrets.token_hex(4)}"
    settings = broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": sts_gate.url, "cut_sessions": False, "invocation_log_group": group},
        usage_source="cloudwatch",
    )
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server, group
    server.stop()


def caller_arn(gate: StsGate, credentials: dict[str, object]) -> str:
    sts = boto3.client(
        "sts",
        endpoint_url=gate.url,
        region_name="us-east-1",
        aws_access_key_id=str(credentials["AccessKeyId"]),
        aws_secret_access_key=str(credentials["SecretAccessKey"]),
        aws_session_token=str(credentials["SessionToken"]),
    )
    return sts.get_caller_identity()["Arn"]


def test_records_of_a_real_delegations_session_are_its_persons_agents_and_delegations(
    usage_broker: tuple[BrokerServer, str],
    sts_gate: StsGate,
    moto_server: MotoServer,
    tmp_path: Path,
) -> None:
    broker, group = usage_broker

    def person(email: str) -> Human:
        human = person_at(broker, email, tmp_path / f"{email}.key.json")
        human.enroll(make_invite(broker.settings, email))
        human.login()
        return human

    alice, bob, admin = (person(f"{n}@example.com") for n in ("alice", "bob", "admin"))
    first = alice.delegate("researcher", [HAIKU])
    second = alice.delegate("researcher", [HAIKU])  # the same agent, another delegation
    arns = []
    for token in (first.token, second.token):
        with broker.client(token) as agent:
            answer = agent.post("/v1/credentials/aws")
        assert answer.status_code == 200, answer.text
        arns.append(caller_arn(sts_gate, answer.json()))
    assert arns[0].endswith(
        f":assumed-role/vouch-agents/{first.delegation.id}.researcher.alice@example.com"
    )
    now = datetime.now(UTC).replace(microsecond=0)
    when = stamp(now - timedelta(minutes=5))
    put_events(
        moto_server,
        group,
        [
            record("u1", arn=arns[0], timestamp=when, tokens_in=1_000_000, tokens_out=0),
            record("u2", arn=arns[1], timestamp=when, tokens_in=0, tokens_out=1000),
            record("u3", arn=PERSON_ARN, timestamp=when, tokens_in=10, tokens_out=0),
            record("u4", arn="arn:aws:iam::123456789012:user/ci", timestamp=when),
        ],
    )
    with broker.client(alice.session) as http:
        mine = http.get("/v1/usage", params={"since": "1h"})
    assert mine.status_code == 200, mine.text
    rows = [
        (r["delegation"], r["agent"], r["person"], r["records"], r["cost"])
        for r in mine.json()["rows"]
    ]
    assert rows == [
        (first.delegation.id, "researcher", "alice@example.com", 1, "1"),
        (second.delegation.id, "researcher", "alice@example.com", 1, "0.005"),
        ("", "", "alice@example.com", 1, "0.00001"),
    ]
    assert mine.json()["email"] == "alice@example.com"
    with broker.client(bob.session) as http:
        assert http.get("/v1/usage").json()["rows"] == []
        refused = http.get("/v1/usage", params={"all": "true"})
    assert (refused.status_code, refused.json()["type"]) == (
        403,
        "urn:vouch:problem:permission-denied",
    )
    with broker.client(admin.session) as http:
        everyone = http.get("/v1/usage", params={"all": "true", "by": "person", "since": "1h"})
    assert [(r["person"], r["foreign"], r["records"]) for r in everyone.json()["rows"]] == [
        ("alice@example.com", False, 3),
        (None, True, 1),
    ]
    assert everyone.json()["email"] is None


def test_usage_without_a_source_is_a_conflict_that_says_what_to_set(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    with broker.client(alice.session) as http:
        answer = http.get("/v1/usage")
        bad = http.get("/v1/usage", params={"since": "forever"})
    assert answer.status_code == 409
    assert answer.json()["type"] == "urn:vouch:problem:conflict"
    assert answer.json()["reason"] == "usage-not-configured"
    assert "VOUCH_USAGE_SOURCE" in answer.json()["detail"]
    assert (bad.status_code, bad.json()["detail"]) == (
        400,
        "since: 'forever' is not a duration of at most 400d (24h, 7d)",
    )


def test_usage_reports_are_rate_limited_per_person_and_address(
    tmp_path: Path, redis_url: str
) -> None:
    """Each report reads its whole range of logs: a person cannot make the broker do it
    without bound (here 3 a minute; nothing configured, so each answer is cheap)."""
    broker = BrokerServer(broker_settings(tmp_path, redis_url, rate_usage_per_min=3)).start()
    try:
        alice = person_at(broker, "alice@example.com", tmp_path / "alice.key.json")
        alice.enroll(make_invite(broker.settings, alice.email))
        alice.login()
        with broker.client(alice.session) as http:
            answers = [http.get("/v1/usage") for _ in range(4)]
    finally:
        broker.stop()
    assert [a.status_code for a in answers] == [409, 409, 409, 429]
    refused = answers[-1]
    assert refused.json()["type"] == "urn:vouch:problem:rate-limited"
    assert refused.json()["detail"] == "too many usage report attempts; try again in a minute"
    assert 0 < int(refused.headers["retry-after"]) <= 60


def test_aws_setup_apply_in_the_emulator_creates_the_invocation_log_group(
    moto_server: MotoServer,
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from broker.cli import main

    group = f"invocations-{secrets.token_hex(4)}"
    monkeypatch.setenv("VOUCH_AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("VOUCH_AWS_INVOCATION_LOG_GROUP", group)
    assert main(["aws-setup", "--apply"]) == 0
    assert f"created log group {group}\n" in capsys.readouterr().err
    assert main(["aws-setup", "--apply"]) == 0  # again: nothing to create
    assert f"log group {group} present\n" in capsys.readouterr().err
    logs = boto3.client("logs", endpoint_url=moto_server.url, region_name="us-east-1")
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [STREAM]
