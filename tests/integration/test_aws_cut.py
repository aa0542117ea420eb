"""The AWS cut against the local AWS emulator's IAM: the written role policy, judged by our
IAM evaluator, denies a revoked session's Bedrock call and allows a kept one; IAM failures,
two writers, a thousand revocations and pruning.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
import redis.asyncio as aioredis
from botocore.config import Config

from broker.aws_cut import AwsCut
from policies import Outcome, Request, evaluate
from policies.revocation_policy import ROLE_INLINE_BUDGET, iso
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import signed_in
from tests.harness.services import MotoServer, free_port
from tests.harness.sts_gate import StsGate
from tests.harness.sts_setup import moto_client
from tests.integration.conftest import wire_aws
from tests.integration.test_exchange import exchange

pytestmark = pytest.mark.integration

POLICY = "vouch-revocations"
MODEL = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
BROAD = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}],
}


@pytest.fixture
def role(moto_server: MotoServer) -> Iterator[tuple[Any, str]]:
    iam = moto_client(moto_server, "iam")
    name = f"vouch-agents-{secrets.token_hex(4)}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(BROAD))
    yield iam, name
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    iam.delete_role(RoleName=name)


def scenario(redis_url: str, body: Callable[[aioredis.Redis], Awaitable[None]]) -> None:
    """Run one async scenario with its own Redis client (the tests themselves stay plain)."""

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await body(client)
        finally:
            await client.aclose()

    asyncio.run(main())


def cut(redis: aioredis.Redis, iam: Any, role_name: str, **extra: Any) -> AwsCut:
    return AwsCut(redis, iam, role_name=role_name, policy_name=POLICY, max_session_s=3600, **extra)


def held(iam: Any, role_name: str) -> str | None:
    names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    if POLICY not in names:
        return None
    document = iam.get_role_policy(RoleName=role_name, PolicyName=POLICY)["PolicyDocument"]
    return document if isinstance(document, str) else json.dumps(document)


def session(user: str, agent: str, dlg: str, issued_at: float) -> dict[str, str]:
    return {
        "aws:PrincipalTag/vouch:User": user,
        "aws:PrincipalTag/vouch:Agent": agent,
        "aws:PrincipalTag/vouch:Delegation": dlg,
        "aws:PrincipalTag/vouch:Key": "cid1",
        "aws:TokenIssueTime": iso(int(issued_at)),
    }


def outcome(policy: str | None, context: dict[str, str]) -> Outcome:
    identity: list[Any] = [BROAD] if policy is None else [BROAD, policy]
    return evaluate(Request("bedrock:InvokeModel", MODEL, context), identity).outcome


def test_each_kind_is_written_and_aws_denies_only_the_revoked_sessions(
    redis_url: str, role: tuple[Any, str]
) -> None:
    async def body(redis: aioredis.Redis) -> None:
        iam, name = role
        writer = cut(redis, iam, name)
        now = writer.clock()
        a, b = "alice@example.com", "bob@example.com"
        revoked = {
            "delegation": session(b, "coder", "dlg_REVOKED", now - 60),
            "agent": session(a, "researcher", "dlg_1", now - 60),
            "user": session("carol@example.com", "coder", "dlg_2", now - 60),
            "credential": {
                **session(b, "bot", "dlg_3", now - 60),
                "aws:PrincipalTag/vouch:Key": "cid9",
            },
        }
        values = {
            "delegation": "dlg_REVOKED",
            "agent": f"agent.researcher.{a}",
            "user": "carol@example.com",
            "credential": "cid9",
        }
        versions = [await writer.record(kind, values[kind], now) for kind in values]  # type: ignore[arg-type]
        assert [await writer.status(v) for v in versions] == ["pending"] * 4
        written = await writer.sync()
        assert written is not None and written.changed and written.policy.coarse_before is None
        assert [await writer.status(v) for v in versions] == ["cut"] * 4
        policy = held(iam, name)
        assert policy is not None
        for kind, context in revoked.items():
            assert outcome(policy, context) is Outcome.EXPLICIT_DENY, kind
        kept = [
            session(a, "coder", "dlg_4", now - 60),  # another agent of the same person
            session(b, "coder", "dlg_5", now - 60),  # another delegation of the same agent
            session("carol@example.com", "coder", "dlg_6", now + 5),  # after her revocation
            session(a, "researcher", "dlg_7", now + 5),  # re-delegated after the revocation
        ]
        for context in kept:
            assert outcome(policy, context) is Outcome.ALLOW, context
        again = await writer.sync()
        assert again is not None and not again.changed  # idempotent: nothing new, no write

    scenario(redis_url, body)


def test_iam_down_leaves_it_pending_and_the_cut_follows_recovery(
    redis_url: str, role: tuple[Any, str], moto_server: MotoServer
) -> None:
    async def body(redis: aioredis.Redis) -> None:
        iam, name = role
        dead = boto3.client(
            "iam",
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.5, read_timeout=0.5),
        )
        writer = cut(redis, dead, name)
        version = await writer.record("delegation", "dlg_X", writer.clock())
        stop = asyncio.Event()
        loop = asyncio.create_task(writer.run(stop, interval_s=0.05))
        await asyncio.sleep(1.5)
        assert await writer.status(version) == "pending"
        behind, age = await writer.pending()
        assert behind == 1 and age is not None and age >= 0.4
        writer.iam = iam  # IAM is back
        assert await writer.wait(version, timeout_s=10) == "cut"
        stop.set()
        await loop
        assert "dlg_X" in (held(iam, name) or "")

    scenario(redis_url, body)


def test_two_replicas_writing_at_once_leave_one_consistent_policy(
    redis_url: str, role: tuple[Any, str]
) -> None:
    async def body(redis: aioredis.Redis) -> None:
        iam, name = role
        one, two = cut(redis, iam, name, lease_s=0.2), cut(redis, iam, name, lease_s=0.2)
        now = one.clock()
        stop = asyncio.Event()
        loops = [asyncio.create_task(w.run(stop, interval_s=0.05)) for w in (one, two)]
        versions = await asyncio.gather(
            *((one if i % 2 else two).record("delegation", f"dlg_{i:016d}", now) for i in range(40))
        )
        assert {await one.wait(v, timeout_s=15) for v in versions} == {"cut"}
        stop.set()
        await asyncio.gather(*loops)
        policy = held(iam, name) or ""
        assert all(f"dlg_{i:016d}" in policy for i in range(40))

    scenario(redis_url, body)


def test_a_thousand_revocations_never_exceed_the_role_budget(
    redis_url: str, role: tuple[Any, str]
) -> None:
    async def body(redis: aioredis.Redis) -> None:
        iam, name = role
        writer = cut(redis, iam, name)
        now = writer.clock()
        for i in range(1000):
            kind = ("delegation", "user", "agent")[i % 3]
            value = {
                "delegation": f"dlg_{i:016d}",
                "user": f"user{i}@example.com",
                "agent": f"agent.bot{i}.user{i}@example.com",
            }[kind]
            await writer.record(kind, value, now - 1000 + i)  # type: ignore[arg-type]
        written = await writer.sync()
        assert written is not None and written.policy.coarse_before is not None
        policy = held(iam, name) or ""
        assert 0 < len("".join(policy.split())) <= ROLE_INLINE_BUDGET
        old = session("user3@example.com", "x", "dlg_old", now - 1000)  # before the cut
        assert outcome(policy, old) is Outcome.EXPLICIT_DENY

    scenario(redis_url, body)


def test_entries_are_pruned_and_the_policy_deleted_after_the_longest_session(
    redis_url: str, role: tuple[Any, str]
) -> None:
    async def body(redis: aioredis.Redis) -> None:
        iam, name = role
        clock = [1_800_000_000.0]
        writer = cut(redis, iam, name, clock=lambda: clock[0])
        await writer.record("user", "alice@example.com", clock[0])
        await writer.sync()
        assert held(iam, name) is not None
        clock[0] += 3600 + 300 + 1  # every session issued before the revocation has expired
        written = await writer.sync()
        assert written is not None and written.policy.pruned == 1 and written.changed
        assert held(iam, name) is None
        assert await redis.zcard("vouch:{awscut}:entries") == 0

    scenario(redis_url, body)


def test_no_broker_credentials_means_disabled(redis_url: str) -> None:
    async def body(redis: aioredis.Redis) -> None:
        writer = cut(redis, None, "vouch-agents")
        version = await writer.record("delegation", "dlg_Y", writer.clock())
        assert await writer.status(version) == "disabled"
        assert await writer.sync() is None

    scenario(redis_url, body)


def test_aws_setup_bounds_the_role_so_a_compromised_broker_grants_nothing_beyond_bedrock(
    tmp_path: Any, redis_url: str, moto_server: MotoServer
) -> None:
    from broker import aws_setup
    from broker.services import load_policy
    from tests.harness.broker import broker_settings

    settings = broker_settings(tmp_path, redis_url, aws={"endpoint_url": moto_server.url})
    catalog, org = load_policy(settings)
    plan = aws_setup.plan(settings, org, catalog)
    iam = moto_client(moto_server, "iam")
    done = aws_setup.apply(plan, iam)
    assert "set permissions boundary vouch-agents-boundary on vouch-agents" in done
    again = aws_setup.apply(plan, iam)  # idempotent, versions of the managed policies rotate
    assert again[-1].startswith("managed policy arn:aws:iam::123456789012:policy/vouch-broker")
    role = iam.get_role(RoleName="vouch-agents")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == plan.boundary_arn
    version = iam.get_policy(PolicyArn=plan.boundary_arn)["Policy"]["DefaultVersionId"]
    boundary = iam.get_policy_version(PolicyArn=plan.boundary_arn, VersionId=version)
    document = boundary["PolicyVersion"]["Document"]
    boundary_doc = document if isinstance(document, str) else json.dumps(document)
    # A compromised broker writes "allow everything" on the role and in a session policy.
    evil = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    for action, resource, want in (
        ("s3:GetObject", "arn:aws:s3:::payroll/2026.csv", Outcome.IMPLICIT_DENY),
        ("iam:CreateUser", "*", Outcome.IMPLICIT_DENY),
        ("bedrock:CreateModelCustomizationJob", "*", Outcome.IMPLICIT_DENY),
        ("bedrock:InvokeModel", MODEL, Outcome.ALLOW),
    ):
        # A permissions boundary intersects like a session policy: every one must allow.
        decided = evaluate(Request(action, resource), [evil], [evil, boundary_doc]).outcome
        assert decided is want, action


# --- through the broker: every revocation path reaches AWS ------------------------------------


@pytest.fixture
def cutting_broker(
    tmp_path: Any, redis_url: str, sts_gate: StsGate, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BrokerServer]:
    """A broker with AWS credentials of its own (the emulator takes any), so the cut is on."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = broker_settings(tmp_path, redis_url, aws={"endpoint_url": sts_gate.url})
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()
    for role in ("vouch-agents", "vouch-people"):
        if POLICY in sts_gate.iam.list_role_policies(RoleName=role)["PolicyNames"]:
            sts_gate.iam.delete_role_policy(RoleName=role, PolicyName=POLICY)


def test_every_revocation_is_cut_in_aws_within_seconds_and_denies_only_its_sessions(
    cutting_broker: BrokerServer, sts_gate: StsGate, tmp_path: Any
) -> None:
    alice = signed_in(cutting_broker, "alice@example.com", tmp_path / "alice.key.json")
    bob = signed_in(cutting_broker, "bob@example.com", tmp_path / "bob.key.json")
    admin = signed_in(cutting_broker, "admin@example.com", tmp_path / "admin.key.json")
    kept = alice.delegate("keeper", ["us.claude-haiku-4-5"])
    doomed = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    other = bob.delegate("coder", ["us.claude-haiku-4-5"])
    for done in (kept, doomed, other):  # live STS sessions, as agents would hold them
        exchange(cutting_broker, done.token)
    sessions = {call.tags["vouch:Delegation"]: call for call in sts_gate.accepted}
    timings = []
    started = time.monotonic()
    revoked = alice.broker.revoke_delegation(doomed.delegation.id, wait_s=10)
    timings.append(time.monotonic() - started)
    assert revoked.aws_sessions == "cut"
    started = time.monotonic()
    by_admin = admin.broker.create_revocation(user="bob@example.com", wait_s=10)
    timings.append(time.monotonic() - started)
    assert by_admin.aws_sessions == "cut"
    policy = held(sts_gate.iam, "vouch-agents")
    assert policy is not None

    def judged(dlg: str) -> Outcome:
        call = sessions[dlg]
        context = {f"aws:PrincipalTag/{k}": v for k, v in call.tags.items()}
        context["aws:TokenIssueTime"] = iso(int(call.claims["iat"]))
        return outcome(policy, context)

    assert judged(doomed.delegation.id) is Outcome.EXPLICIT_DENY
    assert judged(other.delegation.id) is Outcome.EXPLICIT_DENY  # bob was revoked
    assert judged(kept.delegation.id) is Outcome.ALLOW
    print(f"AWS cut: acknowledged to written in {[round(t, 3) for t in timings]} s")
    assert max(timings) < 5, timings  # acknowledged and written within seconds
    agent = admin.broker.create_revocation(agent="agent.keeper.alice@example.com", wait_s=10)
    assert agent.aws_sessions == "cut"
    policy = held(sts_gate.iam, "vouch-agents")
    assert judged(kept.delegation.id) is Outcome.EXPLICIT_DENY
    ready = httpx.get(f"{cutting_broker.url}/readyz").json()
    assert ready == {"status": "ready", "aws_cut": "enabled"}


def test_revoking_a_person_or_key_cuts_their_own_sessions_on_the_people_role(
    cutting_broker: BrokerServer, sts_gate: StsGate, tmp_path: Any
) -> None:
    people = {
        name: signed_in(cutting_broker, f"{name}@example.com", tmp_path / f"{name}.key.json")
        for name in ("alice", "bob", "carol", "admin")
    }
    for name in ("alice", "bob", "carol"):  # each person's own live STS session
        people[name].broker.own_credentials_aws()
    sessions = {call.source_identity: call for call in sts_gate.accepted}
    assert {call.role_arn.rsplit("/", 1)[1] for call in sessions.values()} == {"vouch-people"}
    admin = people["admin"].broker
    assert admin.create_revocation(user="alice@example.com", wait_s=10).aws_sessions == "cut"
    [bobs_key] = people["bob"].broker.list_keys()
    assert admin.create_revocation(credential=bobs_key.cid, wait_s=10).aws_sessions == "cut"
    on_people = held(sts_gate.iam, "vouch-people")
    assert on_people is not None and on_people == held(sts_gate.iam, "vouch-agents")

    def judged(email: str) -> Outcome:
        call = sessions[email]
        context = {f"aws:PrincipalTag/{k}": v for k, v in call.tags.items()}
        context["aws:TokenIssueTime"] = iso(int(call.claims["iat"]))
        return outcome(on_people, context)

    assert judged("alice@example.com") is Outcome.EXPLICIT_DENY  # the person
    assert judged("bob@example.com") is Outcome.EXPLICIT_DENY  # the key that signed him in
    assert judged("carol@example.com") is Outcome.ALLOW  # nobody else


def test_iam_down_refuses_exchanges_at_once_and_cuts_after_recovery(
    cutting_broker: BrokerServer, sts_gate: StsGate, tmp_path: Any
) -> None:
    alice = signed_in(cutting_broker, "alice@example.com", tmp_path / "alice.key.json")
    done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    exchange(cutting_broker, done.token)
    services = cutting_broker.app.state.services
    working, services.aws_cut.iam = (
        services.aws_cut.iam,
        boto3.client(
            "iam",
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.3, read_timeout=0.3),
        ),
    )
    revoked = alice.broker.revoke_delegation(done.delegation.id, wait_s=1)
    assert revoked.aws_sessions == "pending"  # IAM is down: the revocation still stands
    refused = httpx.post(
        f"{cutting_broker.url}/v1/credentials/aws",
        headers={"Authorization": f"Bearer {done.token}"},
    )
    assert refused.json()["type"] == "urn:vouch:problem:token-revoked"
    services.aws_cut.iam = working  # IAM is back: the loop retries with backoff
    deadline = time.monotonic() + 60
    while done.delegation.id not in (held(sts_gate.iam, "vouch-agents") or ""):
        assert time.monotonic() < deadline, "the cut never followed IAM's recovery"
        time.sleep(0.2)
