"""The exchange through the STS gate (AWS's checks in front of moto), docs/design.md section 3.4."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable

import boto3
import jwt
import pytest
from botocore.exceptions import ClientError

from policies import Catalog, Outcome, Request, evaluate
from policies.session_policy import aws_time, model_arn, profile_arn
from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.harness.sts_gate import StsGate

pytestmark = pytest.mark.integration

ACCOUNT, REGION = "123456789012", "us-east-1"
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS = "us.anthropic.claude-opus-4-5-20251101-v1:0"
BROAD_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}],
}


def now() -> dict[str, str]:
    """The time AWS puts in every request's context (the session policy ends at the grant's)."""
    return {"aws:CurrentTime": aws_time(int(time.time()))}


def invoke_allowed(policy: str, profile_id: str, action: str = "bedrock:InvokeModel") -> bool:
    """Would Bedrock allow invoking `profile_id` and the model it routes to in the home region?"""
    catalog = Catalog.builtin()
    entry = catalog.entry(profile_id)
    profile = profile_arn(entry, REGION, ACCOUNT)
    routed = model_arn(REGION, entry.model_id)
    on_profile = evaluate(Request(action, profile, now()), [BROAD_ROLE], [policy])
    on_model = evaluate(
        Request(action, routed, {"bedrock:InferenceProfileArn": profile, **now()}),
        [BROAD_ROLE],
        [policy],
    )
    return on_profile.outcome is Outcome.ALLOW and on_model.outcome is Outcome.ALLOW


def exchange(
    broker: BrokerServer, token: str, body: dict[str, object] | None = None
) -> dict[str, object]:
    with broker.client(token) as agent:
        answer = (
            agent.post("/v1/credentials/aws", json=body)
            if body
            else agent.post("/v1/credentials/aws")
        )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_policy_reaching_sts_allows_exactly_the_granted_models(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", ["us.claude-haiku-4-5", "us.claude-sonnet-4-5"]).token
    doc = exchange(broker, token)
    [call] = sts_gate.accepted
    assert call.access_key_id == doc["AccessKeyId"]
    assert call.policy is not None and len(call.policy) <= 2048
    for granted in (HAIKU, SONNET):
        assert invoke_allowed(call.policy, granted)
        assert invoke_allowed(call.policy, granted, "bedrock:InvokeModelWithResponseStream")
    assert not invoke_allowed(call.policy, OPUS)
    bare = evaluate(
        Request(
            "bedrock:InvokeModel",
            model_arn(REGION, Catalog.builtin().entry(HAIKU).model_id),
            now(),
        ),
        [BROAD_ROLE],
        [call.policy],
    )
    assert bare.outcome is Outcome.IMPLICIT_DENY  # only through the granted profile
    other = evaluate(
        Request("bedrock:CreateModelCustomizationJob", "*", now()), [BROAD_ROLE], [call.policy]
    )
    assert other.outcome is Outcome.IMPLICIT_DENY


def test_sts_assertion_carries_identity_tags_and_defaults(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    done = alice.delegate("researcher", ["us.claude-haiku-4-5"])
    exchange(broker, done.token)
    [call] = sts_gate.accepted
    # CloudTrail names the delegation, the agent and the person (policies/attribution.py).
    assert call.session_name == f"{done.delegation.id}.researcher.alice@example.com"
    assert call.source_identity == "alice@example.com"
    assert call.tags == {
        "vouch:User": "alice@example.com",
        "vouch:Agent": "researcher",
        "vouch:Delegation": done.delegation.id,
        "vouch:Key": done.delegation.cid,
        "vouch:AccessType": "agent",
    }
    assert call.duration_s == 900  # issued credentials cannot be recalled: shortest by default
    assert call.audience == "sts.amazonaws.com"
    assert call.claims["exp"] - call.claims["iat"] <= 300
    assert jwt.decode(done.token, options={"verify_signature": False})["aud"] == broker.url


def test_agent_token_is_useless_at_sts(
    human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", ["us.claude-haiku-4-5"]).token
    sts = boto3.client(
        "sts",
        endpoint_url=sts_gate.url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as caught:
        sts.assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/vouch-agents",
            RoleSessionName="stolen",
            WebIdentityToken=token,
        )
    assert caught.value.response["Error"]["Code"] == "InvalidIdentityToken"
    assert "audience" in caught.value.response["Error"]["Message"].lower()


def test_agent_can_narrow_but_never_widen(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", ["us.claude-haiku-4-5", "us.claude-sonnet-4-5"]).token
    exchange(broker, token, {"models": ["us.claude-haiku-4-5"]})
    [call] = sts_gate.accepted
    assert call.policy is not None
    assert invoke_allowed(call.policy, HAIKU) and not invoke_allowed(call.policy, SONNET)
    with broker.client(token) as agent:
        wider = agent.post("/v1/credentials/aws", json={"models": ["us.claude-opus-4-5"]})
    assert wider.status_code == 403
    assert wider.json()["type"] == "urn:vouch:problem:policy-denied"
    assert wider.json()["models"] == [OPUS]


def test_cache_and_single_flight_make_one_sts_call(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", ["us.claude-haiku-4-5"]).token
    sts_gate.delay_next(1, 0.5)  # the first call is slow: concurrent requests must wait for it
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        docs = list(pool.map(lambda _: exchange(broker, token), range(8)))
    assert len({d["AccessKeyId"] for d in docs}) == 1
    exchange(broker, token)
    assert sts_gate.calls == 1


def test_sts_throttling_is_retried_then_503(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", ["us.claude-haiku-4-5"]).token
    sts_gate.throttle_next(1)
    exchange(broker, token)  # one throttle is absorbed by a jittered retry
    assert sts_gate.calls == 2
    other = alice.delegate("writer", ["us.claude-haiku-4-5"]).token
    sts_gate.throttle_next(10)
    with broker.client(other) as agent:
        answer = agent.post("/v1/credentials/aws")
    assert answer.status_code == 503
    assert sts_gate.calls == 5, (sts_gate.calls, sts_gate.rejected)
    assert answer.json()["type"] == "urn:vouch:problem:sts-unavailable"
    assert answer.json()["aws_code"] == "Throttling"
    assert int(answer.headers["retry-after"]) >= 1
    assert "AccessKeyId" not in answer.text
    with broker.client() as http:
        metrics = http.get("/metrics").text
    assert 'vouch_sts_calls_total{outcome="ok"} 1.0' in metrics
    assert 'vouch_sts_calls_total{outcome="retryable"} 4.0' in metrics, [
        line for line in metrics.splitlines() if "sts_calls_total" in line
    ]


def test_rate_cap_per_delegation(broker: BrokerServer, human_factory: Callable[..., Human]) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", ["us.claude-haiku-4-5"], rate=2).token
    assert jwt.decode(token, options={"verify_signature": False})["rate"] == 2
    exchange(broker, token)
    exchange(broker, token)
    with broker.client(token) as agent:
        third = agent.post("/v1/credentials/aws")
    assert third.status_code == 429
    assert third.json()["type"] == "urn:vouch:problem:rate-limited"
    assert 0 < int(third.headers["retry-after"]) <= 3600
