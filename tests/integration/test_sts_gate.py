"""The STS gate answers what AWS STS would: each check fails with AWS's own error code."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import jwt
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from mypy_boto3_sts import STSClient

from policies.catalog import Catalog
from policies.session_policy import compile_session_policy, trust_policy
from tests.harness.services import MotoServer
from tests.harness.sts_gate import StsGate, setup_provider_and_role, setup_roles

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
AUD = "sts.amazonaws.com"
SUB = "agent.build-bot.alice@example.com"
TAGS = "https://aws.amazon.com/tags"
SOURCE = "https://aws.amazon.com/source_identity"
HAIKU = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": HAIKU}],
    },
    separators=(",", ":"),
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class Issuer:
    """A throwaway OIDC issuer on localhost: openid-configuration and a JWKS over HTTP."""

    def __init__(self) -> None:
        self.keys: dict[str, PrivateKey] = {
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        }
        self.published = {"ec-1", "rsa-1"}
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks.json"}
                elif self.path == "/jwks.json":
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in sorted(self.published):
            key = self.keys[kid]
            if isinstance(key, ec.EllipticCurvePrivateKey):
                jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            else:
                jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": AUD,
            "sub": SUB,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
            SOURCE: "alice@example.com",
            TAGS: {
                "principal_tags": {
                    "vouch:User": ["alice@example.com"],
                    "vouch:Agent": ["build-bot"],
                    "vouch:Delegation": ["dlg-1"],
                    "vouch:AccessType": ["agent"],
                },
                "transitive_tag_keys": ["vouch:User", "vouch:Delegation"],
            },
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self,
        *,
        kid: str = "ec-1",
        alg: str = "ES256",
        sign_with: str | None = None,
        claims: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        """A token from this issuer; a claim overridden with None is left out."""
        payload = self.claims(**(claims or {}), **overrides)
        key = self.keys[sign_with or kid]
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gate(moto_server: MotoServer) -> Iterator[StsGate]:
    with StsGate(moto_server) as started:
        yield started


@pytest.fixture(scope="module")
def role_arn(gate: StsGate, issuer: Issuer) -> str:
    return setup_provider_and_role(gate.iam, issuer.url, max_session_s=3600)


@pytest.fixture(scope="module")
def sts(gate: StsGate) -> STSClient:
    """No retries and no client-side validation: every request reaches the gate once."""
    client: STSClient = boto3.client(
        "sts",
        endpoint_url=gate.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=False
        ),
    )
    return client


@pytest.fixture(autouse=True)
def _fresh_gate(gate: StsGate) -> None:
    gate.reset()


def assume(sts: STSClient, role_arn: str, token: str, **params: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": "agent.build-bot",
        "WebIdentityToken": token,
        "Policy": POLICY,
        "DurationSeconds": 900,
    }
    request.update(params)
    return dict(
        sts.assume_role_with_web_identity(**{k: v for k, v in request.items() if v is not None})
    )


def rejected(
    gate: StsGate, sts: STSClient, role_arn: str, token: str, code: str, **params: Any
) -> str:
    """Assert the call fails with `code` (in botocore and in the gate's record); the message."""
    accepted_before = len(gate.accepted)
    with pytest.raises(ClientError) as caught:
        assume(sts, role_arn, token, **params)
    error = caught.value.response["Error"]
    assert error["Code"] == code, error
    assert gate.rejected[-1].code == code
    assert len(gate.accepted) == accepted_before
    return str(error["Message"])


# -- the happy path ---------------------------------------------------------------------


def test_valid_assertion_gets_credentials_usable_through_the_gate(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    answer = assume(sts, role_arn, issuer.mint())
    creds = answer["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert answer["AssumedRoleUser"]["Arn"].endswith(":assumed-role/vouch-agents/agent.build-bot")
    assert answer["SubjectFromWebIdentityToken"] == SUB
    assert answer["Audience"] == AUD
    assert answer["Provider"] == issuer.url
    assert answer["SourceIdentity"] == "alice@example.com"
    assert 0 < answer["PackedPolicySize"] <= 100

    [call] = gate.accepted
    assert call.access_key_id == creds["AccessKeyId"]
    assert call.role_arn == role_arn
    assert call.session_name == "agent.build-bot"
    assert call.policy == POLICY
    assert call.duration_s == 900
    assert call.claims["sub"] == SUB
    assert call.tags["vouch:User"] == "alice@example.com"
    assert call.transitive_tag_keys == ("vouch:User", "vouch:Delegation")
    assert call.source_identity == "alice@example.com"
    assert gate.calls == 1
    assert not gate.rejected

    as_agent = boto3.client(
        "sts",
        endpoint_url=gate.url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    assert as_agent.get_caller_identity()["Arn"] == answer["AssumedRoleUser"]["Arn"]
    assert gate.calls == 1, "other actions are forwarded, not counted"


def test_other_services_pass_through_so_one_endpoint_url_serves_the_broker(
    gate: StsGate, role_arn: str
) -> None:
    def client(service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=gate.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    assert client("iam").get_role(RoleName="vouch-agents")["Role"]["Arn"] == role_arn
    key = client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    assert key["KeyMetadata"]["KeySpec"] == "ECC_NIST_P256"
    assert gate.calls == 0


def test_rs256_and_minimal_claims_pass(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    token = issuer.mint(kid="rsa-1", alg="RS256", claims={TAGS: None, SOURCE: None})
    answer = assume(sts, role_arn, token, Policy=None, DurationSeconds=None)
    assert "SourceIdentity" not in answer
    [call] = gate.accepted
    assert (call.duration_s, call.policy, call.tags) == (3600, None, {})


def test_jwks_is_cached_and_refreshed_for_an_unknown_kid(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    assume(sts, role_arn, issuer.mint())
    assume(sts, role_arn, issuer.mint())
    assert gate.jwks_fetches == 1
    issuer.keys["ec-2"] = ec.generate_private_key(ec.SECP256R1())
    issuer.published.add("ec-2")
    try:
        assume(sts, role_arn, issuer.mint(kid="ec-2"))
    finally:
        issuer.published.discard("ec-2")
    assert gate.jwks_fetches == 2
    assert len(gate.accepted) == 3


def test_the_projects_own_trust_and_session_policies_pass(
    gate: StsGate, sts: STSClient, issuer: Issuer
) -> None:
    catalog = Catalog.builtin()
    models = [catalog.resolve("us.claude-haiku-4-5"), catalog.resolve("us.claude-sonnet-4-5")]
    policy = compile_session_policy(
        models, catalog, region="us-east-1", account_id=ACCOUNT, expires_at=int(time.time()) + 3600
    )
    setup_provider_and_role(gate.iam, issuer.url)  # the provider
    trust = trust_policy(issuer=issuer.url, account_id=ACCOUNT, allow_local_http=True)
    role = gate.iam.create_role(RoleName="from-aws-setup", AssumeRolePolicyDocument=trust)
    assume(sts, role["Role"]["Arn"], issuer.mint(), Policy=policy)
    assert gate.accepted[-1].packed_percent < 100


# -- the token --------------------------------------------------------------------------


def test_unknown_kid_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    issuer.keys["unpublished"] = ec.generate_private_key(ec.SECP256R1())
    message = rejected(gate, sts, role_arn, issuer.mint(kid="unpublished"), "InvalidIdentityToken")
    assert "verification key" in message


def test_bad_signature_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    issuer.keys["unpublished"] = ec.generate_private_key(ec.SECP256R1())
    token = issuer.mint(kid="ec-1", sign_with="unpublished")
    rejected(gate, sts, role_arn, token, "InvalidIdentityToken")
    head, body, sig = issuer.mint().split(".")
    tampered = f"{head}.{body}.{sig[:-4]}AAAA"
    rejected(gate, sts, role_arn, tampered, "InvalidIdentityToken")


def test_key_of_the_wrong_type_for_alg_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    token = issuer.mint(kid="rsa-1", alg="ES256", sign_with="ec-1")
    rejected(gate, sts, role_arn, token, "InvalidIdentityToken")


def test_hs256_is_rejected(gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer) -> None:
    token = jwt.encode(
        issuer.claims(),
        "a-shared-secret-of-32-bytes-long!",
        algorithm="HS256",
        headers={"kid": "ec-1"},
    )
    assert "algorithm" in rejected(gate, sts, role_arn, token, "InvalidIdentityToken")


def test_alg_none_is_rejected(gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer) -> None:
    token = _unsigned({"alg": "none", "kid": "ec-1", "typ": "JWT"}, issuer.claims())
    assert "algorithm" in rejected(gate, sts, role_arn, token, "InvalidIdentityToken")


def test_eddsa_is_rejected(gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer) -> None:
    token = _unsigned({"alg": "EdDSA", "kid": "ec-1"}, issuer.claims(), b"x" * 64)
    rejected(gate, sts, role_arn, token, "InvalidIdentityToken")


def test_garbage_token_is_rejected(gate: StsGate, sts: STSClient, role_arn: str) -> None:
    assert "not a valid JWT" in rejected(gate, sts, role_arn, "not-a-jwt", "InvalidIdentityToken")


def test_wrong_audience_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    token = issuer.mint(aud="http://localhost:1")
    assert (
        rejected(gate, sts, role_arn, token, "InvalidIdentityToken") == "Incorrect token audience"
    )


def test_expired_token_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    now = int(time.time())
    token = issuer.mint(iat=now - 600, exp=now - 1)
    rejected(gate, sts, role_arn, token, "ExpiredTokenException")


def test_iat_beyond_clock_skew_is_rejected_within_it_accepted(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    now = int(time.time())
    rejected(gate, sts, role_arn, issuer.mint(iat=now + 400, exp=now + 700), "InvalidIdentityToken")
    assume(sts, role_arn, issuer.mint(iat=now + 120, exp=now + 400))
    assert len(gate.accepted) == 1


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": None}, id="missing-sub"),
        pytest.param({"iat": None}, id="missing-iat"),
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"iss": None}, id="missing-iss"),
        pytest.param({"exp": time.time() + 300.5}, id="float-exp"),
        pytest.param({"iat": str(int(time.time()))}, id="string-iat"),
    ],
)
def test_missing_or_mistyped_required_claim_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer, claims: dict[str, Any]
) -> None:
    rejected(gate, sts, role_arn, issuer.mint(**claims), "InvalidIdentityToken")


def test_issuer_without_a_registered_provider_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    message = rejected(
        gate, sts, role_arn, issuer.mint(iss="http://localhost:1"), "InvalidIdentityToken"
    )
    assert message == "No OpenIDConnect provider found in your account for http://localhost:1"
    assert gate.jwks_fetches == 0, "no key fetch from an unregistered issuer"


def test_unreachable_issuer_is_an_idp_communication_error(
    gate: StsGate, sts: STSClient, issuer: Issuer
) -> None:
    dead = "http://127.0.0.1:1"
    role = setup_provider_and_role(gate.iam, dead, role_name="dead-issuer")
    rejected(gate, sts, role, issuer.mint(iss=dead), "IDPCommunicationError")


# -- the role and its trust policy ------------------------------------------------------


def test_sub_outside_the_trust_pattern_is_denied(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    message = rejected(gate, sts, role_arn, issuer.mint(sub="alice@example.com"), "AccessDenied")
    assert "sts:AssumeRoleWithWebIdentity" in message


def test_each_kind_of_sub_is_admitted_at_its_own_role_only(
    gate: StsGate, sts: STSClient, issuer: Issuer
) -> None:
    agents, people = setup_roles(gate.iam, issuer.url)
    person = issuer.mint(
        sub="user.alice@example.com",
        claims={TAGS: {"principal_tags": {"vouch:AccessType": ["human"]}}},
    )
    assume(sts, people, person)
    assume(sts, agents, issuer.mint())
    assert [c.claims["sub"] for c in gate.accepted] == ["user.alice@example.com", SUB]
    for role, token in ((agents, person), (people, issuer.mint())):
        message = rejected(gate, sts, role, token, "AccessDenied")
        assert "no trust policy statement allows it" in message
    # A sub that only looks like one (no dot after the prefix) is neither.
    for role, sub in ((people, "useralice@example.com"), (agents, "agentx")):
        rejected(gate, sts, role, issuer.mint(sub=sub), "AccessDenied")
    assert len(gate.accepted) == 2


def test_unknown_role_is_denied(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    rejected(
        gate, sts, role_arn.replace("vouch-agents", "no-such-role"), issuer.mint(), "AccessDenied"
    )


def test_tags_need_tag_session_and_source_identity_needs_set_source_identity(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    only_assume = setup_provider_and_role(
        gate.iam, issuer.url, role_name="assume-only", actions=["sts:AssumeRoleWithWebIdentity"]
    )
    assert "sts:TagSession" in rejected(gate, sts, only_assume, issuer.mint(), "AccessDenied")
    no_tags = issuer.mint(claims={TAGS: None})
    assert "sts:SetSourceIdentity" in rejected(gate, sts, only_assume, no_tags, "AccessDenied")
    assume(sts, only_assume, issuer.mint(claims={TAGS: None, SOURCE: None}))
    assert len(gate.accepted) == 1


def test_setup_is_idempotent_and_updates_the_role(
    gate: StsGate, sts: STSClient, issuer: Issuer
) -> None:
    first = setup_provider_and_role(gate.iam, issuer.url, role_name="longer", max_session_s=3600)
    again = setup_provider_and_role(gate.iam, issuer.url, role_name="longer", max_session_s=7200)
    assert first == again
    assume(sts, again, issuer.mint(), DurationSeconds=7200)
    assert gate.accepted[-1].duration_s == 7200


@pytest.mark.parametrize("duration", [899, 3601, 43_201])
def test_duration_outside_900_to_role_max_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer, duration: int
) -> None:
    rejected(gate, sts, role_arn, issuer.mint(), "ValidationError", DurationSeconds=duration)


# -- parameters, policy, tags, source identity -------------------------------------------


@pytest.mark.parametrize("name", ["a", "has space", "x" * 65, "agent/bot", "ägent"])
def test_bad_session_name_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer, name: str
) -> None:
    message = rejected(gate, sts, role_arn, issuer.mint(), "ValidationError", RoleSessionName=name)
    assert "roleSessionName" in message


def test_every_parameter_problem_is_reported_at_once(
    gate: StsGate, sts: STSClient, role_arn: str
) -> None:
    message = rejected(
        gate, sts, role_arn, "abc", "ValidationError", RoleSessionName="a", DurationSeconds=1
    )
    assert message.startswith("3 validation errors detected")
    assert "abc" not in message, "the token is never echoed"


def _policy_of_length(length: int) -> str:
    base = json.loads(POLICY)
    base["Statement"][0]["Sid"] = ""
    padding = length - len(json.dumps(base, separators=(",", ":")))
    base["Statement"][0]["Sid"] = "S" * padding
    text = json.dumps(base, separators=(",", ":"))
    assert len(text) == length
    return text


def test_policy_length_limit_is_2048_characters(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    assume(sts, role_arn, issuer.mint(), Policy=_policy_of_length(2048))
    message = rejected(
        gate, sts, role_arn, issuer.mint(), "ValidationError", Policy=_policy_of_length(2049)
    )
    assert "less than or equal to 2048" in message


def test_policy_character_above_u00ff_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    policy = POLICY.replace('"Effect"', '"Sid":"café→","Effect"')
    assert "regular expression pattern" in rejected(
        gate, sts, role_arn, issuer.mint(), "ValidationError", Policy=policy
    )
    latin1 = POLICY.replace('"Effect"', '"Sid":"café","Effect"')
    assume(sts, role_arn, issuer.mint(), Policy=latin1)


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param('{"Statement":[]}', id="no-version"),
        pytest.param('{"Version":"2012-10-17"}', id="no-statement"),
        pytest.param(POLICY.replace('"Effect"', '"Principal":"*","Effect"'), id="principal"),
        pytest.param(POLICY.replace('"Resource"', '"Resourc"'), id="no-resource"),
    ],
)
def test_malformed_policy_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer, policy: str
) -> None:
    rejected(gate, sts, role_arn, issuer.mint(), "MalformedPolicyDocument", Policy=policy)


def test_policy_and_tags_too_large_when_packed(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    tags = {f"t{i}": [secrets.token_urlsafe(180)] for i in range(12)}
    token = issuer.mint(claims={TAGS: {"principal_tags": tags}})
    assert "%" in rejected(
        gate, sts, role_arn, token, "PackedPolicyTooLarge", Policy=_policy_of_length(2048)
    )


@pytest.mark.parametrize(
    "source",
    ["a", "alice smith", "aws:alice", "a" * 65, "alice/bob", 42],
)
def test_bad_source_identity_is_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer, source: object
) -> None:
    message = rejected(gate, sts, role_arn, issuer.mint(claims={SOURCE: source}), "ValidationError")
    assert "sourceIdentity" in message


def _tags(principal_tags: dict[str, Any], transitive: list[str] | None = None) -> dict[str, Any]:
    return {"principal_tags": principal_tags, "transitive_tag_keys": transitive or []}


@pytest.mark.parametrize(
    "claim",
    [
        pytest.param(_tags({f"k{i}": ["v"] for i in range(51)}), id="51-tags"),
        pytest.param(_tags({"k": ["v" * 257]}), id="value-257"),
        pytest.param(_tags({"k" * 129: ["v"]}), id="key-129"),
        pytest.param(_tags({"k": ["a", "b"]}), id="two-values"),
        pytest.param(_tags({"k": "v"}), id="value-not-a-list"),
        pytest.param(_tags({"k": ["v"]}, ["other"]), id="transitive-not-a-tag"),
        pytest.param(_tags({"aws:k": ["v"]}), id="reserved-prefix"),
        pytest.param(_tags({"k": ["v"], "K": ["w"]}), id="keys-differ-in-case"),
        pytest.param(_tags({"k": ["no*stars"]}), id="bad-character"),
        pytest.param(["not", "an", "object"], id="not-an-object"),
    ],
)
def test_bad_session_tags_are_rejected(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer, claim: object
) -> None:
    assert "tags" in rejected(
        gate, sts, role_arn, issuer.mint(claims={TAGS: claim}), "ValidationError"
    )


def test_fifty_tags_of_maximal_size_are_within_the_tag_limits(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    tags = _tags({f"k{i:02d}": ["v"] for i in range(50)})
    tags["principal_tags"]["k00"] = ["v" * 256]
    assume(sts, role_arn, issuer.mint(claims={TAGS: tags}), Policy=None)


def test_concurrent_calls_are_all_checked_and_recorded(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    tokens = [issuer.mint() for _ in range(6)] + [issuer.mint(aud="wrong")] * 2
    errors: list[str] = []

    def call(token: str) -> None:
        try:
            assume(sts, role_arn, token)
        except ClientError as exc:
            errors.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=call, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["InvalidIdentityToken"] * 2
    assert gate.calls == 8
    assert len(gate.accepted) == 6
    assert len({c.access_key_id for c in gate.accepted}) == 6


# -- faults -----------------------------------------------------------------------------


def test_throttle_next_answers_throttling_then_recovers(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    gate.throttle_next(2)
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            assume(sts, role_arn, issuer.mint())
        assert caught.value.response["Error"]["Code"] == "Throttling"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assume(sts, role_arn, issuer.mint())
    assert gate.calls == 3
    assert [r.code for r in gate.rejected] == ["Throttling", "Throttling"]
    assert len(gate.accepted) == 1


def test_botocore_retries_through_a_throttle(gate: StsGate, role_arn: str, issuer: Issuer) -> None:
    retrying = boto3.client(
        "sts",
        endpoint_url=gate.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    gate.throttle_next(1)
    assume(retrying, role_arn, issuer.mint())
    assert gate.calls == 2
    assert len(gate.accepted) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(500, "InternalFailure"), (503, "ServiceUnavailable")]
)
def test_fail_next_answers_server_errors(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer, status: int, code: str
) -> None:
    gate.fail_next(1, status=status)
    with pytest.raises(ClientError) as caught:
        assume(sts, role_arn, issuer.mint())
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assume(sts, role_arn, issuer.mint())


def test_delay_next_slows_calls_and_reset_faults_clears(
    gate: StsGate, sts: STSClient, role_arn: str, issuer: Issuer
) -> None:
    gate.delay_next(1, 0.3)
    started = time.monotonic()
    assume(sts, role_arn, issuer.mint())
    assert time.monotonic() - started >= 0.3
    gate.delay_next(5, 10.0)
    gate.throttle_next(5)
    gate.reset_faults()
    started = time.monotonic()
    assume(sts, role_arn, issuer.mint())
    assert time.monotonic() - started < 2.0
    assert gate.calls == 2
