"""A person's own Bedrock credentials (issue 15): `POST /v1/credentials/aws/self` with the
session as bearer, through the STS gate and the roles `aws-setup` made. What reaches STS,
the clamp to the session (invariant 12), attenuation to the [[use]] rules (invariant 3),
revocation (invariant 7) and the attacks the issue lists, each with its exact problem."""

from __future__ import annotations

import concurrent.futures
import json
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import jwt
import pytest
from botocore.exceptions import ClientError

from broker.keys import load_key_ring
from broker.session import mint_session
from broker.settings import EXAMPLE_POLICY
from broker.signing_keys import revoke_from_host
from broker.tokens import STS_TYP, mint
from policies.session_policy import aws_time
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws
from tests.integration.test_abuse import bearer, problem
from tests.integration.test_exchange import HAIKU, OPUS, SONNET, invoke_allowed

pytestmark = pytest.mark.integration

OWN = "/v1/credentials/aws/self"
AGENTS_ROLE = "arn:aws:iam::123456789012:role/vouch-agents"
PEOPLE_ROLE = "arn:aws:iam::123456789012:role/vouch-people"
# The example policy, plus partners who may delegate Haiku but use nothing themselves, and
# Carol, who alone may use Opus herself.
EXTRA_RULES = """
[[rules]]
description = "partners delegate Haiku, and may use nothing themselves"
people = ["*@partner.example"]
models = ["us.claude-haiku-4-5"]

[[use]]
description = "Carol alone uses Opus herself"
people = ["carol@example.com"]
models = ["us.claude-opus-4-5"]
"""


@pytest.fixture
def broker(tmp_path: Path, redis_url: str, sts_gate: StsGate) -> Iterator[BrokerServer]:
    """This module's broker: the example policy and the rules above, AWS wired by aws-setup."""
    policy = tmp_path / "org.toml"
    policy.write_text(EXAMPLE_POLICY.read_text() + EXTRA_RULES)
    settings = broker_settings(
        tmp_path, redis_url, aws={"endpoint_url": sts_gate.url}, policy_file=str(policy)
    )
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


@pytest.fixture
def alice(human_factory: Callable[..., Human]) -> Human:
    return human_factory("alice@example.com")


def own(http: httpx.Client, session: str | None, body: dict[str, Any] | None = None) -> Any:
    """The person's own credentials, answered 200 (the document)."""
    answer = http.post(OWN, json=body, headers=bearer(session or ""))
    assert answer.status_code == 200, answer.text
    return answer


def session_for(broker: BrokerServer, human: Human, ttl_s: int) -> str:
    """A session for `human` that lives `ttl_s` seconds, signed by the broker's own key (as a
    login would make one, with a shorter life than the settings give)."""
    ring = load_key_ring(Path(broker.settings.signing_keys or ""))
    token, _ = mint_session(
        email=human.email,
        cid=human.broker.list_keys()[0].cid,
        user_verified=True,
        issuer=broker.url,
        ttl_s=ttl_s,
        now=int(time.time()),
        keys=ring,
    )
    return token


# --- what reaches STS ---------------------------------------------------------------------------


def test_a_person_gets_exactly_their_own_models_through_the_people_role(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    answer = own(http, alice.session)
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["vouch-region"] == "us-east-1"
    assert set(answer.json()) == {
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }
    [call] = sts_gate.accepted
    assert call.access_key_id == answer.json()["AccessKeyId"]
    assert call.role_arn == PEOPLE_ROLE  # never the agents role
    assert call.claims["sub"] == call.session_name == "user.alice@example.com"
    assert call.source_identity == "alice@example.com"
    [key] = alice.broker.list_keys()
    assert call.tags == {
        "vouch:User": "alice@example.com",
        "vouch:Key": key.cid,
        "vouch:AccessType": "human",
    }
    assert sorted(call.transitive_tag_keys) == sorted(call.tags)
    assert call.duration_s == 3600  # the [[use]] rule's 1 h: a person's default is its maximum
    assert call.policy is not None and "*" not in call.policy
    for model in (HAIKU, SONNET):  # what the example's [[use]] rule lets everyone use
        assert invoke_allowed(call.policy, model)
    assert not invoke_allowed(call.policy, OPUS)  # Carol's alone


def test_a_person_narrows_to_a_subset_and_the_duration_they_ask_for(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    own(http, alice.session, {"models": ["us.claude-haiku-4-5"], "duration_s": 1200})
    [call] = sts_gate.accepted
    assert call.policy is not None
    assert invoke_allowed(call.policy, HAIKU) and not invoke_allowed(call.policy, SONNET)
    assert call.duration_s == 1200
    own(http, alice.session, {"duration_s": 43200})  # beyond the policy: its 1 h
    assert sts_gate.accepted[-1].duration_s == 3600


def test_own_credentials_end_with_the_session_to_the_second(
    broker: BrokerServer, http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    short = session_for(broker, alice, 1800)  # 30 min left, the policy allows 1 h
    ends = jwt.decode(short, options={"verify_signature": False})["exp"]
    asked = time.time()
    own(http, short)
    call = sts_gate.accepted[-1]
    assert ends - asked - 5 <= call.duration_s <= ends - asked
    statements = json.loads(call.policy or "")["Statement"]
    assert statements and all(
        s["Condition"]["DateLessThan"] == {"aws:CurrentTime": aws_time(ends)} for s in statements
    )
    nearly = session_for(broker, alice, 300)  # below STS's floor: 900 s, ended by the policy
    own(http, nearly)
    call = sts_gate.accepted[-1]
    assert call.duration_s == 900
    ends = jwt.decode(nearly, options={"verify_signature": False})["exp"]
    assert call.policy is not None and f'"aws:CurrentTime":"{aws_time(ends)}"' in call.policy


# --- the attacks the issue lists ----------------------------------------------------------------


def test_an_agent_token_at_the_persons_door_and_a_session_at_the_agents_are_refused(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    agent_token = alice.delegate("researcher", ["us.claude-haiku-4-5"]).token or ""
    at_own = http.post(OWN, headers=bearer(agent_token))
    assert problem(at_own) == (401, "token-invalid")
    assert at_own.json()["detail"] == "token type 'vouch-agent+jwt' is not 'vouch-session+jwt'"
    at_agents = http.post("/v1/credentials/aws", headers=bearer(alice.session or ""))
    assert problem(at_agents) == (401, "token-invalid")
    assert at_agents.json()["detail"] == "token type 'vouch-session+jwt' is not 'vouch-agent+jwt'"
    assert sts_gate.calls == 0
    own(http, alice.session)  # each at its own door works
    assert http.post("/v1/credentials/aws", headers=bearer(agent_token)).status_code == 200
    assert [c.role_arn for c in sts_gate.accepted] == [PEOPLE_ROLE, AGENTS_ROLE]


def test_a_person_whose_rules_allow_no_own_use_gets_nothing(
    http: httpx.Client, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    bob = human_factory("bob@partner.example")
    refused = http.post(OWN, headers=bearer(bob.session or ""))
    assert problem(refused) == (403, "policy-denied")
    assert refused.json()["reason"] == "person-not-allowed"
    assert refused.json()["detail"] == "bob@partner.example may not use any model themselves"
    assert bob.delegate("researcher", ["us.claude-haiku-4-5"]).token  # he still delegates
    models = bob.broker.list_models()
    assert [(m.name, m.use, m.delegate) for m in models.models] == [
        ("us.claude-haiku-4-5", False, True)
    ]
    assert sts_gate.calls == 0


def test_a_session_asking_for_a_model_only_another_person_may_use_is_refused(
    http: httpx.Client, alice: Human, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    refused = http.post(
        OWN, json={"models": ["us.claude-opus-4-5"]}, headers=bearer(alice.session or "")
    )
    assert problem(refused) == (403, "policy-denied")
    assert refused.json()["models"] == [OPUS]
    assert refused.json()["reason"] == "model-not-allowed"
    mixed = http.post(
        OWN,
        json={"models": ["us.claude-haiku-4-5", "us.claude-opus-4-5"]},
        headers=bearer(alice.session or ""),
    )
    assert problem(mixed) == (403, "policy-denied")  # never the allowed part alone
    assert sts_gate.calls == 0
    carol = human_factory("carol@example.com")
    own(http, carol.session, {"models": ["us.claude-opus-4-5"]})
    [call] = sts_gate.accepted
    assert call.policy is not None and invoke_allowed(call.policy, OPUS)
    assert call.source_identity == "carol@example.com"


def test_a_revoked_person_or_key_or_a_logout_denies_their_own_credentials(
    broker: BrokerServer,
    http: httpx.Client,
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
) -> None:
    admin = human_factory("admin@example.com")
    alice, bob, dave = (human_factory(f"{n}@example.com") for n in ("alice", "bob", "dave"))
    for human in (alice, bob, dave):
        own(http, human.session)  # cached at the broker from now on
    admin.broker.create_revocation(user="alice@example.com")
    revoked = http.post(OWN, headers=bearer(alice.session or ""))
    assert problem(revoked) == (401, "token-revoked") and revoked.json()["handle"] == "user"
    [bobs_key] = bob.broker.list_keys()
    admin.broker.create_revocation(credential=bobs_key.cid)
    revoked = http.post(OWN, headers=bearer(bob.session or ""))
    assert problem(revoked) == (401, "token-revoked") and revoked.json()["handle"] == "credential"
    session = dave.session
    dave.broker.logout()
    revoked = http.post(OWN, headers=bearer(session or ""))
    assert problem(revoked) == (401, "token-revoked") and revoked.json()["handle"] == "session"
    assert len(sts_gate.accepted) == 3  # the refusals never reached STS
    # Last (it stops this broker signing): the broker key that signed the session, revoked.
    carol = human_factory("carol@example.com")
    kid = jwt.get_unverified_header(carol.session or "")["kid"]
    settings = broker.settings
    revoke_from_host(
        settings.redis_url, [kid], actor="test", replicas=0, wait_ms=0, audit_max_len=1000
    )
    revoked = http.post(OWN, headers=bearer(carol.session or ""))
    assert problem(revoked) == (401, "token-revoked")
    assert revoked.json()["handle"] == "signing-key"
    assert len(sts_gate.accepted) == 3


def test_a_revocation_during_the_sts_call_is_answered_token_revoked(
    http: httpx.Client, alice: Human, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    admin = human_factory("admin@example.com")
    sts_gate.delay_next(1, 1.0)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, OWN, headers=bearer(alice.session or ""))
        while sts_gate.calls == 0:
            time.sleep(0.01)
        admin.broker.create_revocation(user="alice@example.com")
        answer = pending.result()
    assert problem(answer) == (401, "token-revoked")
    assert "AccessKeyId" not in answer.text


# --- cache, single flight, timing ---------------------------------------------------------------


def test_own_exchanges_are_cached_and_single_flighted_per_session(
    broker: BrokerServer, alice: Human, sts_gate: StsGate
) -> None:
    sts_gate.delay_next(1, 0.3)  # concurrent first requests must wait for the one STS call
    headers = bearer(alice.session or "")

    def one(_: int) -> tuple[float, str]:
        with broker.client() as client:
            started = time.perf_counter()
            answer = client.post(OWN, headers=headers)
            assert answer.status_code == 200, answer.text
            return time.perf_counter() - started, answer.json()["AccessKeyId"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        first = list(pool.map(one, range(8)))
    assert len({key for _, key in first}) == 1
    assert sts_gate.calls == 1
    # Timing: a miss (a new session of the same person: another cache key) and hits.
    other = alice.login()
    with broker.client() as client:
        started = time.perf_counter()
        assert client.post(OWN, headers=bearer(other)).status_code == 200
        miss = time.perf_counter() - started
        hits = []
        for _ in range(20):
            started = time.perf_counter()
            assert client.post(OWN, headers=bearer(other)).status_code == 200
            hits.append(time.perf_counter() - started)
    assert sts_gate.calls == 2
    print(
        f"\nown exchange over HTTP: uncached {miss * 1000:.1f} ms (STS gate + moto),"
        f" cached median {statistics.median(hits) * 1000:.2f} ms of {len(hits)}"
    )


# --- the roles' trust: each kind of sub only at its own role ------------------------------------


def test_the_people_role_admits_only_people_and_the_agents_role_only_agents(
    broker: BrokerServer, sts_gate: StsGate
) -> None:
    ring = load_key_ring(Path(broker.settings.signing_keys or ""))
    sts = boto3.client(
        "sts",
        endpoint_url=sts_gate.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )

    def assume(role: str, sub: str, access: str) -> str:
        now = int(time.time())
        tags = {"vouch:User": ["alice@example.com"], "vouch:AccessType": [access]}
        assertion = mint(
            {
                "iss": broker.url,
                "aud": "sts.amazonaws.com",
                "sub": sub,
                "iat": now,
                "exp": now + 300,
                "jti": secrets.token_urlsafe(16),
                "https://aws.amazon.com/source_identity": "alice@example.com",
                "https://aws.amazon.com/tags": {
                    "principal_tags": tags,
                    "transitive_tag_keys": sorted(tags),
                },
            },
            typ=STS_TYP,
            keys=ring,
        )
        try:
            sts.assume_role_with_web_identity(
                RoleArn=role, RoleSessionName="probe", WebIdentityToken=assertion
            )
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    person, agent = "user.alice@example.com", "agent.researcher.alice@example.com"
    assert assume(PEOPLE_ROLE, person, "human") == "ok"
    assert assume(AGENTS_ROLE, agent, "agent") == "ok"
    assert assume(AGENTS_ROLE, person, "human") == "AccessDenied"
    assert assume(PEOPLE_ROLE, agent, "agent") == "AccessDenied"
    assert assume(PEOPLE_ROLE, "alice@example.com", "human") == "AccessDenied"
    assert [r.code for r in sts_gate.rejected] == ["AccessDenied"] * 3
