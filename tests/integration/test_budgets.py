"""Delegation budgets against the emulator's CloudWatch Logs and a real redis-server.

The spend follower reads records written where Bedrock writes them (events on the stream
`aws/bedrock/modelinvocations`); the broker's own services (store, revocation service, audit)
do the rest. Follower lag and throughput are measured here and printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import redis
import redis.asyncio as aioredis
import vouch_delegate
from vouch_delegate._client import BrokerClient
from vouch_delegate._messages import Delegation as SdkDelegation
from vouch_delegate.cli import main as cli_main

from broker.delegation_store import Delegation
from broker.revocation import delegation_key
from broker.services import Services, build_services, spend_follower_for
from broker.settings import Settings
from broker.spend_follower import (
    _ADD,
    LEASE,
    OVER,
    Polled,
    SpendFollower,
    _pages,
    seen_key,
    spend_key,
)
from policies.attribution import agent_session_name
from policies.budget import parse_budget, to_units
from policies.invocation_log import STREAM
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human, person_at
from tests.harness.services import MotoServer
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import make_invite, wire_aws
from tests.unit.policies.invocation_records import record

pytestmark = pytest.mark.integration

HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
"""$1.00 per million input tokens, $5.00 per million output (the built-in table)."""
ROLE = "arn:aws:sts::123456789012:assumed-role/vouch-agents"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def logs_client(moto: MotoServer) -> Any:
    return boto3.client("logs", endpoint_url=moto.url, region_name="us-east-1")


def new_group(moto: MotoServer) -> str:
    group = f"invocations-{secrets.token_hex(4)}"
    logs = logs_client(moto)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=STREAM)
    return group


def put(moto: MotoServer, group: str, records: list[dict[str, Any]]) -> None:
    """Events as Bedrock writes them: one record each, timestamped with the call."""
    logs = logs_client(moto)
    # PutLogEvents takes a batch in chronological order only.
    records = sorted(records, key=lambda r: str(r["timestamp"]))
    for at in range(0, len(records), 500):
        batch = records[at : at + 500]
        logs.put_log_events(
            logGroupName=group,
            logStreamName=STREAM,
            logEvents=[
                {
                    "timestamp": int(
                        datetime.fromisoformat(str(r["timestamp"])).timestamp() * 1000
                    ),
                    "message": json.dumps(r),
                }
                for r in batch
            ],
        )


def records_of(
    arn: str, prefix: str, n: int, *, tokens_in: int = 1000, at: datetime | None = None
) -> list[dict[str, Any]]:
    """`n` records of `tokens_in` input and 0 output tokens each (1000: $0.001 on Haiku),
    timestamped `at` (default now)."""
    now = stamp(at or datetime.now(UTC))
    return [
        record(f"{prefix}-{i:05d}", arn=arn, timestamp=now, tokens_in=tokens_in, tokens_out=0)
        for i in range(n)
    ]


# --- the follower on its own: restarts, two replicas, late records --------------------------


def follower_settings(tmp_path: Path, redis_url: str, moto: MotoServer, group: str) -> Settings:
    return broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": moto.url, "cut_sessions": False, "invocation_log_group": group},
        usage_source="cloudwatch",
        spend_poll_interval_s=0.3,
    )


def scenario(settings: Settings, body: Callable[[Services], Awaitable[None]]) -> None:
    """Run one async scenario over the broker's real services (not started: the test
    drives the followers itself)."""

    async def main() -> None:
        services = build_services(settings)
        try:
            await body(services)
        finally:
            await services.close()

    asyncio.run(main())


def another(services: Services, **extra: Any) -> SpendFollower:
    """A second replica's follower: the same services, its own holder id."""
    follower = spend_follower_for(
        services.settings,
        usage=services.usage,
        store=services.delegations.store,
        revoker=services.revoker,
        audit=services.audit,
        metrics=services.metrics,
    )
    for name, value in extra.items():
        setattr(follower, name, value)
    return follower


async def delegation(
    services: Services, budget: str | None, *, ago_s: int = 0, ttl_s: int = 3600
) -> tuple[Delegation, str]:
    """A delegation record as the broker stores it, and its sessions' ARN."""
    now = int(time.time()) - ago_s
    dlg_id = "dlg_" + secrets.token_urlsafe(12)
    record = Delegation(
        id=dlg_id,
        email="alice@example.com",
        agent="researcher",
        sub="agent:researcher:alice@example.com",
        models=(HAIKU,),
        cid="cid",
        created_at=now,
        expires_at=now + ttl_s,
        budget=budget,
    )
    assert await services.delegations.store.add(record, max_active=100) is None
    name = agent_session_name(dlg_id, "researcher", "alice@example.com")
    return record, f"{ROLE}/{name}"


async def spent_units(redis: aioredis.Redis, dlg_id: str) -> int:
    return int(await redis.get(spend_key(dlg_id)) or 0)


def test_a_follower_stopped_mid_stream_and_a_new_one_count_each_record_once(
    tmp_path: Path, redis_url: str, moto_server: MotoServer, aws_env: None
) -> None:
    group = new_group(moto_server)
    settings = follower_settings(tmp_path, redis_url, moto_server, group)

    async def body(services: Services) -> None:
        dlg, arn = await delegation(services, "1000")
        unit = 10**9  # $0.001 = 10^9 units a record
        now = datetime.now(UTC)
        put(moto_server, group, records_of(arn, "early", 120, at=now - timedelta(seconds=20)))
        put(moto_server, group, records_of(arn, "late", 80, at=now - timedelta(seconds=5)))
        # The first follower reads the stream up to a moment between the two batches (pages
        # of 20), then stops without a word: it never gives its lease up (3 s, long enough
        # that a loaded machine cannot let it lapse before the second one is refused).
        first = another(services, page_size=20, lease_ms=3000)
        polled = await first.poll(now=(now - timedelta(seconds=10)).timestamp())
        assert polled is not None and polled.outcomes == {"counted": 120}
        assert await spent_units(services.redis, dlg.id) == 120 * unit
        second = another(services, page_size=30)
        assert await second.poll() is None  # the stopped one's lease has not lapsed yet
        await asyncio.sleep(first.lease.ttl_ms / 1000 + 0.1)
        polled = await second.poll()  # from the cursor, less the look-back: both batches
        assert polled is not None and polled.outcomes == {"counted": 80, "duplicate": 120}
        assert await spent_units(services.redis, dlg.id) == 200 * unit  # exactly $0.20
        again = await second.poll()
        assert again is not None and again.outcomes == {"duplicate": 200}
        assert str(await second.spent(dlg.id)) == "0.200000000000"

    scenario(settings, body)


def test_a_delegation_left_over_budget_by_a_stopped_follower_is_revoked_by_the_next(
    tmp_path: Path, redis_url: str, moto_server: MotoServer, aws_env: None
) -> None:
    group = new_group(moto_server)
    settings = follower_settings(tmp_path, redis_url, moto_server, group)

    async def body(services: Services) -> None:
        dlg, arn = await delegation(services, "0.02")
        records = records_of(arn, "crash", 3, tokens_in=10_000)  # $0.03 in all
        put(moto_server, group, records)
        # What the counting script leaves when its follower stops before revoking: the
        # records seen, the spend added, the delegation in the set of those over budget.
        for item in records:
            assert await services.redis.set(seen_key(str(item["requestId"])), b"1", nx=True)
        await services.redis.incrby(spend_key(dlg.id), 3 * 10**10)
        await services.redis.sadd(OVER, dlg.id)
        polled = await another(services).poll()
        assert polled is not None
        assert polled.outcomes == {"duplicate": 3} and polled.revoked == [dlg.id]
        assert await services.redis.smembers(OVER) == set()
        mark = await services.redis.get(delegation_key(dlg.id))
        assert mark == b"budget:0.03:0.02"
        stored = await services.delegations.store.get(dlg.id)
        assert stored is not None
        assert (stored.revoked_by, stored.revoked_reason) == ("vouch-broker", "budget-exceeded")

    scenario(settings, body)


def test_one_poll_revokes_once_when_several_records_cross_together(
    tmp_path: Path, redis_url: str, moto_server: MotoServer, aws_env: None
) -> None:
    group = new_group(moto_server)
    settings = follower_settings(tmp_path, redis_url, moto_server, group)

    async def body(services: Services) -> None:
        dlg, arn = await delegation(services, "0.005")
        put(moto_server, group, records_of(arn, "burst", 10))  # $0.010
        follower = another(services)
        polled = await follower.poll()
        assert polled is not None
        assert polled.outcomes == {"counted": 10} and polled.revoked == [dlg.id]
        again = await follower.poll()
        assert again is not None and again.revoked == []
        assert await services.redis.get(delegation_key(dlg.id)) == b"budget:0.01:0.005"
        events = await services.redis.xrange("vouch:audit")
        kinds = [e[b"event"] for _, e in events]
        assert kinds.count(b"budget_exceeded") == 1 and kinds.count(b"revoked") == 1

    scenario(settings, body)


def test_two_replicas_follow_one_at_a_time_and_the_second_takes_over(
    tmp_path: Path, redis_url: str, moto_server: MotoServer, aws_env: None
) -> None:
    group = new_group(moto_server)
    settings = follower_settings(tmp_path, redis_url, moto_server, group)

    async def body(services: Services) -> None:
        dlg, arn = await delegation(services, "1000")
        # Leases of 5 s: a poll slowed by a loaded machine must not pass the lease on (the
        # handover tested here is the one a stopping follower makes).
        one, two = another(services, lease_ms=5000), another(services, lease_ms=5000)
        stop_one, stop_two = asyncio.Event(), asyncio.Event()
        runs = [asyncio.create_task(one.run(stop_one)), asyncio.create_task(two.run(stop_two))]
        holders = set()
        for batch in range(5):
            put(moto_server, group, records_of(arn, f"a{batch}", 40))
            await asyncio.sleep(0.2)
            holders.add(await services.redis.get(LEASE))
        deadline = time.monotonic() + 10
        while await spent_units(services.redis, dlg.id) < 200 * 10**9:
            assert time.monotonic() < deadline, await spent_units(services.redis, dlg.id)
            await asyncio.sleep(0.05)
        assert len(holders) == 1  # one follower held the lease throughout
        leader, (waiter, stop_leader, stop_waiter) = (
            (one, (two, stop_one, stop_two))
            if holders == {one.lease.holder.encode()}
            else (two, (one, stop_two, stop_one))
        )
        assert waiter.last_read is None  # it never read the log while the other led
        stop_leader.set()
        await runs[0 if leader is one else 1]  # stopping, it gives the lease up
        put(moto_server, group, records_of(arn, "b", 50))
        deadline = time.monotonic() + 10
        while await spent_units(services.redis, dlg.id) < 250 * 10**9:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await services.redis.get(LEASE) == waiter.lease.holder.encode()
        await asyncio.sleep(1)  # more polls re-read everything: still exact
        assert await spent_units(services.redis, dlg.id) == 250 * 10**9
        stop_waiter.set()
        await asyncio.gather(*runs)
        assert await services.redis.get(LEASE) is None

    scenario(settings, body)


def test_records_after_the_delegation_expired_count_but_revoke_nothing(
    tmp_path: Path, redis_url: str, moto_server: MotoServer, aws_env: None
) -> None:
    group = new_group(moto_server)
    settings = follower_settings(tmp_path, redis_url, moto_server, group)

    async def body(services: Services) -> None:
        dlg, arn = await delegation(services, "0.01", ago_s=600, ttl_s=300)
        put(moto_server, group, records_of(arn, "late", 3, tokens_in=10_000))  # $0.03
        polled = await another(services).poll()
        assert polled is not None
        assert polled.outcomes == {"counted": 3} and polled.revoked == []
        assert str(await services.spend.spent(dlg.id)) == "0.030000000000"
        assert await services.redis.get(delegation_key(dlg.id)) is None
        stored = await services.delegations.store.get(dlg.id)
        assert stored is not None and stored.revoked_at is None
        events = await services.redis.xrange("vouch:audit")
        assert not [e for _, e in events if e[b"event"] in (b"budget_exceeded", b"revoked")]

    scenario(settings, body)


def test_records_of_delegations_without_budget_or_not_ours_are_not_spend(
    tmp_path: Path, redis_url: str, moto_server: MotoServer, aws_env: None
) -> None:
    group = new_group(moto_server)
    settings = follower_settings(tmp_path, redis_url, moto_server, group)

    async def body(services: Services) -> None:
        free, free_arn = await delegation(services, None)
        other = "arn:aws:sts::123456789012:assumed-role/someone-else/session"
        broken = record("broken", timestamp=stamp(datetime.now(UTC)))
        del broken["requestId"]
        put(
            moto_server,
            group,
            [*records_of(free_arn, "free", 2), *records_of(other, "other", 3), broken],
        )
        polled = await another(services).poll()
        assert polled is not None
        assert polled.outcomes == {"no-budget": 2, "not-ours": 3, "invalid": 1}
        assert await spent_units(services.redis, free.id) == 0

    scenario(settings, body)


def test_follower_throughput(
    tmp_path: Path, redis_url: str, moto_server: MotoServer, aws_env: None
) -> None:
    """Records per second through the follower path (read from the emulator, parse,
    attribute, price, count in Redis), printed for the notes."""
    group = new_group(moto_server)
    settings = follower_settings(tmp_path, redis_url, moto_server, group)
    n = 3000

    async def body(services: Services) -> None:
        dlgs = [await delegation(services, "1000") for _ in range(10)]
        put(
            moto_server,
            group,
            [r for i, (_, arn) in enumerate(dlgs) for r in records_of(arn, f"t{i}", n // 10)],
        )
        follower = another(services)
        began = time.perf_counter()
        polled = await follower.poll()
        took = time.perf_counter() - began
        assert polled is not None and polled.outcomes == {"counted": n}
        # Counting alone (no CloudWatch read): the same records again, all duplicates.
        events = [e for page in _read_all(follower) for e in page]
        began = time.perf_counter()
        again = Polled()
        for at in range(0, len(events), 1000):
            await follower.count(events[at : at + 1000], again, now=time.time())
        counted = time.perf_counter() - began
        assert again.outcomes == {"duplicate": n}
        print(
            f"\nspend follower: {n} records in {took:.2f} s = {n / took:.0f} records/s end to end"
            f" (emulator read included); counting alone {n / counted:.0f} records/s"
        )
        for dlg, _ in dlgs:
            assert await spent_units(services.redis, dlg.id) == (n // 10) * 10**9

    scenario(settings, body)


def _read_all(follower: SpendFollower) -> Iterator[list[Any]]:
    assert follower.group is not None
    yield from _pages(follower.logs, follower.group, 0, int(time.time() * 1000) + 1, 1000)


# --- a real delegation's session, through the broker ---------------------------------------


@pytest.fixture
def budget_broker(
    tmp_path: Path, redis_url: str, sts_gate: StsGate, moto_server: MotoServer, aws_env: None
) -> Iterator[tuple[BrokerServer, str]]:
    group = new_group(moto_server)
    settings = broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": sts_gate.url, "cut_sessions": False, "invocation_log_group": group},
        usage_source="cloudwatch",
        spend_poll_interval_s=0.5,
    )
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server, group
    server.stop()


def caller_arn(gate: StsGate, credentials: dict[str, Any]) -> str:
    sts = boto3.client(
        "sts",
        endpoint_url=gate.url,
        region_name="us-east-1",
        aws_access_key_id=str(credentials["AccessKeyId"]),
        aws_secret_access_key=str(credentials["SecretAccessKey"]),
        aws_session_token=str(credentials["SessionToken"]),
    )
    return str(sts.get_caller_identity()["Arn"])


def test_a_budget_crossed_by_one_large_record_revokes_and_refuses_the_next_exchange(
    budget_broker: tuple[BrokerServer, str],
    sts_gate: StsGate,
    moto_server: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker, group = budget_broker
    alice = person_at(broker, "alice@example.com", tmp_path / "alice.key.json")
    alice.enroll(make_invite(broker.settings, "alice@example.com"))
    alice.login()
    granted = alice.delegate("researcher", [HAIKU], budget="0.05")
    assert granted.delegation.budget == "0.05"
    with broker.client(granted.token) as agent:
        answer = agent.post("/v1/credentials/aws")
    assert answer.status_code == 200, answer.text
    arn = caller_arn(sts_gate, answer.json())
    # Under the budget: counted, nothing revoked.
    put(moto_server, group, records_of(arn, "small", 1, tokens_in=10_000))  # $0.01
    wait_until(lambda: listed(alice, granted.delegation.id).spent == "0.01")
    # One call of 123,456 input and 2,000 output tokens: $0.123456 + $0.01 > $0.05.
    written = time.monotonic()
    put(
        moto_server,
        group,
        [
            record(
                "large",
                arn=arn,
                timestamp=stamp(datetime.now(UTC)),
                tokens_in=123_456,
                tokens_out=2000,
            )
        ],
    )
    with broker.client(granted.token) as agent:
        refused = wait_until(lambda: refusal(agent))
    lag = time.monotonic() - written
    with capsys.disabled():  # the figure the notes report (pytest -s)
        print(f"\nspend follower lag (record written -> exchange refused): {lag:.2f} s")
    assert refused.status_code == 403
    assert refused.json() == {
        "type": "urn:vouch:problem:budget-exceeded",
        "title": "Delegation budget spent",
        "status": 403,
        "detail": "delegation revoked: it spent 0.143456 of its 0.05 budget",
        "instance": "/v1/credentials/aws",
        "spent": "0.143456",
        "budget": "0.05",
    }
    row = listed(alice, granted.delegation.id)
    assert (row.state, row.revoked_by, row.revoked_reason, row.spent, row.budget) == (
        "revoked",
        "vouch-broker",
        "budget-exceeded",
        "0.143456",
        "0.05",
    )
    with pytest.raises(vouch_delegate.BudgetExceeded) as caught:
        BrokerClient(broker.url).exchange_aws(granted.token)
    assert (caught.value.spent, caught.value.budget, caught.value.status) == (
        "0.143456",
        "0.05",
        403,
    )
    # The CLI says so, with the amount spent (exit 5: refused).
    monkeypatch.setenv("VOUCH_AGENT_TOKEN", granted.token)
    monkeypatch.setenv("VOUCH_SERVER", broker.url)
    capsys.readouterr()
    assert cli_main(["credential", "aws"]) == 5
    assert capsys.readouterr().err == (
        "vouch: delegation revoked: it spent 0.143456 of its 0.05 budget\n"
        "vouch: budget spent: 0.143456 of 0.05; this delegation is revoked, ask its person for"
        " a new one\n"
    )
    audit = audit_events(broker)
    exceeded = [e for e in audit if e["event"] == "budget_exceeded"]
    assert [(e["dlg"], e["spent"], e["budget"]) for e in exceeded] == [
        (granted.delegation.id, "0.143456", "0.05")
    ]
    revoked = [e for e in audit if e["event"] == "revoked"]
    assert [(e["actor"], e["subject"], e["reason"]) for e in revoked] == [
        ("vouch-broker", granted.delegation.id, "budget-exceeded")
    ]
    delegated = [e for e in audit if e["event"] == "delegated"]
    assert delegated[0]["budget"] == "0.05"
    with broker.client() as anyone:
        metrics = anyone.get("/metrics").text
    assert "vouch_budget_revocations_total 1.0" in metrics
    assert 'vouch_spend_records_total{outcome="counted"} 2.0' in metrics
    assert "vouch_spend_follower_lag_seconds" in metrics


def test_the_org_policy_caps_and_requires_budgets(
    tmp_path: Path, redis_url: str, sts_gate: StsGate, aws_env: None
) -> None:
    policy = Path(broker_settings(tmp_path, redis_url).policy_file).read_text()
    strict = policy.replace(
        'max_ttl = "8h"\n\n[[use]]',
        'max_ttl = "8h"\nmax_budget = "10.00"\nrequire_budget = true\n\n[[use]]',
        1,
    )
    assert strict != policy
    (tmp_path / "org.toml").write_text(strict)
    settings = broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": sts_gate.url},
        policy_file=str(tmp_path / "org.toml"),
    )
    server = BrokerServer(settings).start()
    try:
        alice = person_at(server, "alice@example.com", tmp_path / "alice.key.json")
        alice.enroll(make_invite(settings, "alice@example.com"))
        alice.login()
        over = alice.post(
            "/v1/delegations/begin",
            {"agent": "bot", "models": [HAIKU], "budget": "10.01"},
            alice.session,
        )
        assert over.status_code == 403
        assert over.json()["type"] == "urn:vouch:problem:policy-denied"
        assert over.json()["reason"] == "budget-over-max"
        assert over.json()["detail"] == (
            "budget 10.01 exceeds the org policy's maximum of 10.00 for these models"
        )
        missing = alice.post(
            "/v1/delegations/begin", {"agent": "bot", "models": [HAIKU]}, alice.session
        )
        assert missing.status_code == 403
        assert (missing.json()["reason"], missing.json()["detail"]) == (
            "budget-required",
            "the org policy requires a budget on this delegation (vouch delegate --budget)",
        )
        malformed = alice.post(
            "/v1/delegations/begin",
            {"agent": "bot", "models": [HAIKU], "budget": "1e3"},
            alice.session,
        )
        assert malformed.status_code == 400
        assert malformed.json()["detail"] == (
            "budget: '1e3' is not an amount like 5 or 5.00 (at most six decimals)"
        )
        # An agent's request is refused the same way before anyone is asked.
        request = alice.post(
            "/v1/delegation-requests",
            {"email": "alice@example.com", "agent": "bot", "models": [HAIKU]},
            None,
        )
        assert (request.status_code, request.json()["reason"]) == (403, "budget-required")
        asked = alice.post(
            "/v1/delegation-requests",
            {"email": "alice@example.com", "agent": "bot", "models": [HAIKU], "budget": "10"},
            None,
        )
        assert asked.status_code == 201, asked.text
        proposal, done = alice.approve(asked.json()["user_code"])
        assert proposal.grant.budget == "10"
        assert done.delegation.budget == "10"
        fits = alice.delegate("bot", [HAIKU], budget="10.00")
        assert fits.delegation.budget == "10.00"
    finally:
        server.stop()


def wait_until(check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except AssertionError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def refusal(agent: httpx.Client) -> httpx.Response | None:
    answer = agent.post("/v1/credentials/aws")
    return answer if answer.status_code != 200 else None


def listed(human: Human, dlg_id: str) -> SdkDelegation:
    """The delegation as `GET /v1/delegations` lists it, through the SDK."""
    return next(r for r in human.broker.list_delegations() if r.id == dlg_id)


def audit_events(broker: BrokerServer) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(broker.settings.redis_url, decode_responses=True)
    try:
        return [dict(fields) for _, fields in client.xrange("vouch:audit")]
    finally:
        client.close()


def test_spend_is_compared_with_the_budget_exactly_past_what_a_double_holds(
    redis_url: str,
) -> None:
    """Budgets go up to $1,000,000, 10^18 units: Lua's doubles would round one unit under
    the budget up to it (their spacing there is 128 units)."""
    budget = to_units(parse_budget("1000000"))
    client = redis.Redis.from_url(redis_url)
    add = client.register_script(_ADD)
    over = f"vouch:test-over:{secrets.token_hex(4)}"
    spend = f"vouch:test-spend:{secrets.token_hex(4)}"

    def count(units: int, request: str) -> int:
        seen = f"vouch:test-seen:{request}"
        (total,) = add(keys=[over, seen, spend], args=[60, units, 60, budget, "dlg_x"])
        return int(total)

    assert count(budget - 1, secrets.token_hex(4)) == budget - 1
    assert client.smembers(over) == set()  # one unit short: not over
    assert count(1, secrets.token_hex(4)) == budget
    assert client.smembers(over) == {b"dlg_x"}
    client.delete(over, spend)


def test_a_budget_over_a_model_without_a_price_is_refused(
    tmp_path: Path, redis_url: str, sts_gate: StsGate, aws_env: None
) -> None:
    """Its records could never be priced, so its spend could never reach the budget."""
    (tmp_path / "catalog.toml").write_text(
        '[[models]]\nid = "acme.private-model-v1"\nname = "Acme private"\n'
    )
    policy = Path(broker_settings(tmp_path, redis_url).policy_file).read_text()
    extended = policy.replace(
        'models = ["us.claude-haiku-4-5", "us.claude-sonnet-4-5"]\nmax_ttl = "8h"',
        'models = ["us.claude-haiku-4-5", "us.claude-sonnet-4-5", "acme.private-model-v1"]\n'
        'max_ttl = "8h"',
        1,
    )
    assert extended != policy
    (tmp_path / "org.toml").write_text(extended)
    settings = broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": sts_gate.url},
        policy_file=str(tmp_path / "org.toml"),
        catalog_file=str(tmp_path / "catalog.toml"),
    )
    server = BrokerServer(settings).start()
    try:
        alice = person_at(server, "alice@example.com", tmp_path / "alice.key.json")
        alice.enroll(make_invite(settings, "alice@example.com"))
        alice.login()
        refused = alice.post(
            "/v1/delegations/begin",
            {"agent": "bot", "models": [HAIKU, "acme.private-model-v1"], "budget": "5"},
            alice.session,
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"] == (
            "no price for acme.private-model-v1: a budget cannot be enforced over it"
            " (add its price to the price table, VOUCH_PRICES_FILE)"
        )
        # Without a budget the model may be delegated; with one, the priced model alone too.
        assert alice.delegate("bot", ["acme.private-model-v1"]).delegation.budget is None
        assert alice.delegate("bot2", [HAIKU], budget="5").delegation.budget == "5"
    finally:
        server.stop()
