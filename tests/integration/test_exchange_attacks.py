"""Attacks on the exchange and the HTTP edge (issue 12, items 13, 15 and 16): each refused
with its exact problem, at real HTTP, over a real redis-server and the STS gate."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from vouch_delegate import AgentCredentials, TokenExpired
from vouch_delegate._messages import AgentToken

from broker.keys import generate_key_dir, load_key_ring
from broker.settings import load_settings
from broker.tokens import AGENT_TYP, mint
from policies import Catalog, Request, evaluate
from policies.session_policy import profile_arn
from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.harness.services import free_port
from tests.harness.sts_gate import StsGate
from tests.integration.test_abuse import bearer, problem

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
EXCHANGE = "/v1/credentials/aws"


@pytest.fixture
def alice(human_factory: Callable[..., Human]) -> Human:
    return human_factory("alice@example.com")


def token_of(done: AgentToken) -> str:
    assert done.token is not None  # a delegation the person made: its token comes back
    return done.token


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def resigned(broker: BrokerServer, claims: dict[str, Any]) -> str:
    """`claims` signed with the broker's own active key: a token only the broker could make."""
    ring = load_key_ring(Path(broker.settings.signing_keys or ""))
    return mint(claims, typ=AGENT_TYP, keys=ring)


# --- item 13: 500s at the edge ------------------------------------------------------------------


NOT_UTF8 = "request body is not valid UTF-8"
INVALID_UTF8 = {
    b'{"email": "\xff\xfe"}': NOT_UTF8,  # bytes that are never UTF-8, inside a string
    b'{"email": "\xc3"}': NOT_UTF8,  # a truncated two-byte sequence
    b'{"models": ["\xed\xa0\x80"]}': NOT_UTF8,  # an encoded surrogate (CESU-8)
    b'{"\xf0\x9f": 1}': NOT_UTF8,  # in a member name
    b"\x80": "JSON is malformed: invalid character (byte 0)",  # outside any string
}


def test_invalid_utf8_in_a_json_body_is_a_400_at_every_body_door(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    token = token_of(alice.delegate("researcher", [HAIKU]))
    doors: list[tuple[str, str | None]] = [
        ("/v1/login/begin", None),
        ("/v1/login/complete", None),
        ("/v1/enroll/begin", None),
        ("/v1/enroll/complete", None),
        ("/v1/delegation-requests", None),
        ("/v1/delegation-requests/deny", alice.session),
        ("/v1/delegations/begin", alice.session),
        ("/v1/delegations/complete", alice.session),
        (EXCHANGE, token),
        (f"{EXCHANGE}/self", alice.session),
    ]
    for path, auth in doors:
        for body, detail in INVALID_UTF8.items():
            headers = {"content-type": "application/json", **(bearer(auth) if auth else {})}
            answer = http.post(path, content=body, headers=headers)
            assert problem(answer) == (400, "invalid-request"), (path, body, answer.text)
            assert answer.json()["detail"] == detail, (path, body)
    assert sts_gate.calls == 0
    assert http.get("/readyz").status_code == 200


def test_a_signed_agent_token_whose_act_lacks_cid_is_401_token_invalid(
    broker: BrokerServer, http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    claims = claims_of(token_of(alice.delegate("researcher", [HAIKU])))
    shapes = {
        "act without cid": {**claims, "act": {"sub": alice.email, "amr": ["hwk", "uv"]}},
        "act a string": {**claims, "act": alice.email},
        "cid a number": {**claims, "act": {**claims["act"], "cid": 7}},
    }
    for name, shaped in shapes.items():
        answer = http.post(EXCHANGE, headers=bearer(resigned(broker, shaped)))
        assert problem(answer) == (401, "token-invalid"), (name, answer.text)
        assert answer.json()["detail"].startswith("agent token claims are malformed: "), name
        assert answer.headers["www-authenticate"] == 'Bearer realm="vouch"'
    assert sts_gate.calls == 0


# --- item 15: credentials never outlive the grant (invariant 12) --------------------------------


BROAD_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}],
}


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def expiry_of(document: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(document["Expiration"])).timestamp()


def allows_haiku_at(policy: str, epoch: float) -> bool:
    """Would AWS allow invoking the Haiku profile at `epoch`, under this session policy?"""
    catalog = Catalog.builtin()
    entry = catalog.entry(catalog.resolve(HAIKU))
    arn = profile_arn(entry, "us-east-1", "123456789012")
    now = {"aws:CurrentTime": iso(epoch)}
    return evaluate(Request("bedrock:InvokeModel", arn, now), [BROAD_ROLE], [policy]).allowed


def test_credentials_asked_for_longer_than_the_delegation_lives_end_with_it(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    done = alice.delegate("researcher", [HAIKU], ttl_s=1800)  # 30 min left
    expires_at = claims_of(token_of(done))["exp"]
    asked = time.time()
    answer = http.post(EXCHANGE, json={"duration_s": 3600}, headers=bearer(token_of(done)))
    assert answer.status_code == 200, answer.text
    call = sts_gate.accepted[-1]
    assert expires_at - asked - 5 <= call.duration_s <= expires_at - asked  # not 3600
    assert expiry_of(answer.json()) <= expires_at + 1  # STS counts from its own clock
    # And AWS itself ends them then: every Allow stops at the delegation's expiry.
    statements = json.loads(call.policy or "")["Statement"]
    assert statements and all(
        s["Condition"]["DateLessThan"] == {"aws:CurrentTime": iso(expires_at)} for s in statements
    )
    assert allows_haiku_at(call.policy or "", expires_at - 1)
    assert not allows_haiku_at(call.policy or "", expires_at)


def test_a_delegation_with_less_than_the_sts_floor_left_gets_the_floor_ended_by_the_policy(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    done = alice.delegate("researcher", [HAIKU], ttl_s=300)  # STS gives no less than 900 s
    expires_at = claims_of(token_of(done))["exp"]
    answer = http.post(EXCHANGE, headers=bearer(token_of(done)))
    assert answer.status_code == 200, answer.text
    call = sts_gate.accepted[-1]
    assert call.duration_s == 900
    assert allows_haiku_at(call.policy or "", expires_at - 1)
    assert not allows_haiku_at(call.policy or "", expires_at)
    assert not allows_haiku_at(call.policy or "", time.time() + 899)


def test_the_sdk_never_serves_credentials_past_the_token_expiry(
    broker: BrokerServer, alice: Human, sts_gate: StsGate
) -> None:
    done = alice.delegate("researcher", [HAIKU], ttl_s=300)
    expires_at = claims_of(token_of(done))["exp"]
    creds = AgentCredentials(f"http://127.0.0.1:{broker.port}", token=token_of(done))
    got = creds.get()
    assert sts_gate.accepted[-1].duration_s == 900  # what STS issued: 900 s
    assert got.expiration.timestamp() == expires_at  # what the SDK serves: until the token ends
    assert got.process_document()["Expiration"] == iso(expires_at)
    late = AgentCredentials(
        f"http://127.0.0.1:{broker.port}", token=token_of(done), clock=lambda: expires_at + 1
    )
    with pytest.raises(TokenExpired):
        late.get()
    assert len(sts_gate.accepted) == 1


# --- item 16: smaller holes at the edge ---------------------------------------------------------


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_second_spelling_of_a_token_is_refused_at_every_door(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    """(r, n - s) and a padded signature verify as the same token: only the minted form opens."""
    tokens = {"agent": token_of(alice.delegate("researcher", [HAIKU])), "session": alice.session}
    doors = {"agent": ("POST", EXCHANGE), "session": ("GET", "/v1/delegations")}
    for kind, token in tokens.items():
        assert token is not None
        head, _, segment = token.rpartition(".")
        raw = base64.urlsafe_b64decode(segment + "==")
        s = int.from_bytes(raw[32:], "big")
        twin = f"{head}.{b64(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"
        method, path = doors[kind]
        assert http.request(method, path, headers=bearer(token)).status_code == 200, kind
        for variant in (twin, f"{token}=="):
            answer = http.request(method, path, headers=bearer(variant))
            assert problem(answer) == (401, "token-invalid"), (kind, answer.text)
            assert answer.json()["detail"] == (
                "token signature is not canonical ES256 (r || low s, unpadded base64url)"
            )
    assert sts_gate.calls == 1


def test_an_empty_model_list_is_a_400_not_the_whole_grant(
    http: httpx.Client, alice: Human, sts_gate: StsGate
) -> None:
    token = token_of(alice.delegate("researcher", [HAIKU, "us.claude-sonnet-4-5"]))
    answer = http.post(EXCHANGE, json={"models": []}, headers=bearer(token))
    assert problem(answer) == (400, "invalid-request"), answer.text
    assert "models" in answer.json()["detail"]
    assert sts_gate.calls == 0
    for whole in ({"models": None}, {}):  # null or absent: the whole grant, as documented
        assert http.post(EXCHANGE, json=whole, headers=bearer(token)).status_code == 200


def test_metrics_and_schema_are_closed_on_the_broker_port_unless_turned_on(
    tmp_path: Path, redis_url: str
) -> None:
    closed = BrokerServer(load_settings(env={}, **production_like(tmp_path, redis_url))).start()
    try:
        with closed.client() as http:
            for path in ("/metrics", "/schema", "/schema/openapi.json", "/schema/swagger"):
                answer = http.get(path)
                assert problem(answer) == (404, "not-found"), path
            assert http.get("/healthz").status_code == 200  # the rest of /ops stays
            assert http.get("/.well-known/jwks.json").status_code == 200
    finally:
        closed.stop()
    opened = load_settings(
        env={}, **production_like(tmp_path, redis_url), expose_metrics=True, expose_schema=True
    )
    server = BrokerServer(opened).start()
    try:
        with server.client() as http:
            assert "vouch_http_requests_total" in http.get("/metrics").text
            assert "/v1/credentials/aws" in http.get("/schema/openapi.json").json()["paths"]
    finally:
        server.stop()


def production_like(tmp_path: Path, redis_url: str) -> dict[str, Any]:
    """The settings a production broker starts with: nothing but what it must be told."""
    keys = tmp_path / "keys"
    if not keys.exists():
        generate_key_dir(keys)
    port = free_port()
    return {
        "issuer": f"http://localhost:{port}",
        "redis_url": redis_url,
        "signing_keys": str(keys),
    }
