"""Key-bound agent tokens (DPoP, RFC 9449): each attack on a bound token refused with its exact
problem, at real HTTP, over a real redis-server and the STS gate (docs/security.md)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from vouch_delegate import AgentCredentials, AgentKey

from broker.settings import Settings
from tests.harness.broker import BrokerServer, broker_settings, make_invite
from tests.harness.people import Human, person_at
from tests.harness.services import free_port
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws
from tests.integration.test_abuse import problem
from tests.integration.test_exchange_attacks import claims_of, token_of

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
EXCHANGE = "/v1/credentials/aws"
NO_PROOF = (
    "this token is bound to a key (cnf.jkt): send a DPoP proof of that key in the DPoP header"
)
CHALLENGE = 'DPoP error="invalid_dpop_proof", algs="ES256 ES384 ES512 EdDSA"'


@pytest.fixture
def alice(human_factory: Callable[..., Human]) -> Human:
    return human_factory("alice@example.com")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode()).digest())


def bound(alice: Human, key: AgentKey, agent: str = "researcher") -> str:
    """A delegation bound to `key`: the token names its thumbprint in cnf.jkt."""
    token = token_of(alice.delegate(agent, [HAIKU], bind_key=key.thumbprint))
    assert claims_of(token)["cnf"] == {"jkt": key.thumbprint}
    return token


def hand_made(
    private: Any,
    token: str,
    url: str,
    *,
    alg: str = "ES256",
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A proof built by hand, to say what no client would."""
    jwk = AgentKey(private).public_jwk if isinstance(private, ec.EllipticCurvePrivateKey) else {}
    body = {"jti": secrets.token_urlsafe(8), "htm": "POST", "htu": url, "iat": int(time.time())}
    body["ath"] = ath(token)
    body.update(claims)
    headers = {"typ": "dpop+jwt", "jwk": jwk, **(header or {})}
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, private, algorithm=alg, headers=headers
    )


def exchange(
    http: httpx.Client, token: str, proof: str | None, scheme: str = "DPoP"
) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return http.post(EXCHANGE, headers=headers)


def refused(answer: httpx.Response) -> str:
    """The detail of an RFC 9449 refusal, after checking every part of its shape."""
    assert problem(answer) == (401, "invalid-dpop-proof"), answer.text
    assert answer.headers["www-authenticate"] == CHALLENGE
    body = answer.json()
    assert body["error"] == "invalid_dpop_proof"
    return str(body["detail"])


def test_a_bound_token_exchanges_with_a_fresh_proof_per_request(
    http: httpx.Client, alice: Human, broker: BrokerServer, sts_gate: StsGate
) -> None:
    key = AgentKey.generate()
    token = bound(alice, key)
    url = broker.url + EXCHANGE
    for _ in range(3):  # the second and third are cache hits: only the proof is verified
        answer = exchange(http, token, key.proof("POST", url, token))
        assert answer.status_code == 200, answer.text
        assert answer.json()["AccessKeyId"].startswith("ASIA")
    # The query and the fragment are not part of htu (RFC 9449 section 4.3).
    assert exchange(http, token, key.proof("POST", url + "?x=1", token)).status_code == 200
    # The scheme does not decide: a bound token sent as a Bearer still needs its proof.
    assert exchange(http, token, key.proof("POST", url, token), "Bearer").status_code == 200


def test_the_sdk_proves_for_the_issuers_url_when_it_reaches_the_broker_at_another(
    alice: Human, broker: BrokerServer, sts_gate: StsGate
) -> None:
    """An agent behind a proxy or on an internal address calls a URL that is not the
    broker's public one; its proofs name the public one (the token's `iss`), as the broker
    expects."""
    key = AgentKey.generate()
    token = bound(alice, key)
    internal = broker.url.replace("localhost", "127.0.0.1")
    assert internal != broker.url
    creds = AgentCredentials(internal, token=token, key=key).get()
    assert creds.access_key_id.startswith("ASIA")


def test_a_stolen_bound_token_without_a_proof_is_refused(http: httpx.Client, alice: Human) -> None:
    token = bound(alice, AgentKey.generate())
    assert refused(exchange(http, token, None)) == NO_PROOF
    assert refused(exchange(http, token, None, "Bearer")) == NO_PROOF


def test_a_proof_from_another_key_is_refused(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    token = bound(alice, AgentKey.generate())
    thief = AgentKey.generate()
    assert refused(exchange(http, token, thief.proof("POST", broker.url + EXCHANGE, token))) == (
        "the DPoP proof is signed by another key than the one this token is bound to"
    )


@pytest.fixture
def replica(broker: BrokerServer) -> Iterator[httpx.Client]:
    """A second broker of the same issuer (same keys, same Redis) on another port."""
    other = BrokerServer(broker.settings, port=free_port()).start()
    try:
        with other.client() as client:
            yield client
    finally:
        other.stop()


def test_a_replayed_proof_is_refused_on_the_same_and_on_another_replica(
    http: httpx.Client, alice: Human, broker: BrokerServer, replica: httpx.Client
) -> None:
    key = AgentKey.generate()
    token = bound(alice, key)
    proof = key.proof("POST", broker.url + EXCHANGE, token)
    assert exchange(http, token, proof).status_code == 200
    replayed = (
        "the DPoP proof was used already (its jti is taken): make a new proof for every request"
    )
    assert refused(exchange(http, token, proof)) == replayed
    assert refused(exchange(replica, token, proof)) == replayed
    # The other replica takes a fresh proof: only the jti was refused.
    assert (
        exchange(replica, token, key.proof("POST", broker.url + EXCHANGE, token)).status_code == 200
    )


def test_a_proof_for_another_method_or_url_is_refused(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    key = AgentKey.generate()
    token = bound(alice, key)
    url = broker.url + EXCHANGE
    assert refused(exchange(http, token, key.proof("GET", url, token))) == (
        "the DPoP proof's htm 'GET' is not this request's method POST"
    )
    for other in (
        broker.url + "/v1/credentials/aws/self",
        f"http://127.0.0.1:{broker.port}{EXCHANGE}",  # where the request went, not the issuer
        "https://evil.example" + EXCHANGE,
    ):
        assert refused(exchange(http, token, key.proof("POST", other, token))) == (
            f"the DPoP proof's htu {other!r} is not {broker.url}{EXCHANGE}"
        )


def test_a_proof_too_old_or_from_the_future_is_refused(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    key = AgentKey.generate()
    token = bound(alice, key)
    url = broker.url + EXCHANGE
    old = refused(exchange(http, token, key.proof("POST", url, token, now=time.time() - 120)))
    assert re.fullmatch(
        r"the DPoP proof is too old: issued 12[0-9] s ago, at most 60 s are accepted", old
    ), old
    ahead = refused(exchange(http, token, key.proof("POST", url, token, now=time.time() + 120)))
    assert re.fullmatch(r"the DPoP proof is issued in the future \(11[0-9] s ahead\)", ahead)
    # Within the clock leeway (30 s) a proof from a slightly fast clock passes.
    fast = key.proof("POST", url, token, now=time.time() + 10)
    assert exchange(http, token, fast).status_code == 200


def test_a_proof_for_another_token_or_without_ath_is_refused(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    key = AgentKey.generate()
    token = bound(alice, key)
    other = bound(alice, key, agent="other")
    url = broker.url + EXCHANGE
    assert refused(exchange(http, token, key.proof("POST", url, other))) == (
        "the DPoP proof's ath is not the hash of this token"
    )
    private = AgentKey.generate()
    token = bound(alice, private, agent="third")
    without = hand_made(private._private, token, url, ath=None)
    assert refused(exchange(http, token, without)) == "the DPoP proof has no ath (the token's hash)"


def test_proofs_with_alg_none_or_hs256_are_refused(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    key = AgentKey.generate()
    token = bound(alice, key)
    url = broker.url + EXCHANGE
    claims = {"jti": "j1", "htm": "POST", "htu": url, "iat": int(time.time()), "ath": ath(token)}
    header = {"typ": "dpop+jwt", "jwk": key.public_jwk}
    unsigned = ".".join(
        b64url(msgspec.json.encode(part)) for part in ({**header, "alg": "none"}, claims)
    )
    assert refused(exchange(http, token, unsigned + ".")) == (
        "the DPoP proof's alg 'none' is not allowed (allowed: ES256, ES384, ES512, EdDSA)"
    )
    # HMAC keyed with the public key's own bytes: the classic algorithm confusion.
    secret = base64.urlsafe_b64decode(key.public_jwk["x"] + "=")
    hmac_proof = jwt.encode(claims, secret, algorithm="HS256", headers=header)
    assert refused(exchange(http, token, hmac_proof)) == (
        "the DPoP proof's alg 'HS256' is not allowed (allowed: ES256, ES384, ES512, EdDSA)"
    )


def test_a_private_key_in_the_proofs_jwk_is_refused(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key = AgentKey(private)
    token = bound(alice, key)
    d = b64url(private.private_numbers().private_value.to_bytes(32, "big"))
    leaking = hand_made(
        private, token, broker.url + EXCHANGE, header={"jwk": {**key.public_jwk, "d": d}}
    )
    assert refused(exchange(http, token, leaking)) == (
        "the DPoP proof's jwk holds a private key; send only the public key"
    )


def test_a_proof_beside_an_unbound_token_is_ignored(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    # An unbound token is a bearer token: a proof adds nothing and is not checked (even a
    # broken one), under either scheme. docs/security.md says so.
    token = token_of(alice.delegate("researcher", [HAIKU]))
    assert "cnf" not in claims_of(token)
    assert exchange(http, token, "not.a.proof", "Bearer").status_code == 200
    proof = AgentKey.generate().proof("POST", broker.url + EXCHANGE, token)
    assert exchange(http, token, proof).status_code == 200


def test_several_dpop_headers_are_refused(
    http: httpx.Client, alice: Human, broker: BrokerServer
) -> None:
    key = AgentKey.generate()
    token = bound(alice, key)
    url = broker.url + EXCHANGE
    proofs = [("DPoP", key.proof("POST", url, token)), ("DPoP", key.proof("POST", url, token))]
    answer = http.post(EXCHANGE, headers=[("Authorization", f"DPoP {token}"), *proofs])
    assert refused(answer) == "send one DPoP header, not several"


# --- the org policy can require binding ---------------------------------------------------------


def requiring_policy(tmp_path: Path, settings: Settings) -> Path:
    """The broker's policy with `require_key_binding = true` in [defaults] (every rule)."""
    text = Path(settings.policy_file).read_text()
    policy = tmp_path / "binding.toml"
    policy.write_text(text.replace("[defaults]\n", "[defaults]\nrequire_key_binding = true\n", 1))
    return policy


@pytest.fixture
def strict(
    broker: BrokerServer, tmp_path: Path, redis_url: str, sts_gate: StsGate
) -> Iterator[BrokerServer]:
    """A broker whose org policy requires binding (another issuer, its own keys)."""
    policy = requiring_policy(tmp_path, broker.settings)
    settings = broker_settings(
        tmp_path / "strict", redis_url, aws={"endpoint_url": sts_gate.url}, policy_file=str(policy)
    )
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


def test_binding_required_by_policy_and_absent_is_refused(
    strict: BrokerServer, tmp_path: Path
) -> None:
    bob = person_at(strict, "bob@example.com", tmp_path / "bob.key.json")
    bob.enroll(make_invite(strict.settings, bob.email))
    bob.login()
    begin = bob.post(
        "/v1/delegations/begin", {"agent": "researcher", "models": [HAIKU]}, bob.session
    )
    assert problem(begin) == (403, "policy-denied"), begin.text
    assert begin.json()["reason"] == "key-binding-required"
    assert begin.json()["detail"] == (
        "the org policy requires binding this delegation to the agent's key"
        " (vouch delegate --bind-key, or an agent request from the SDK)"
    )
    request = bob.post(
        "/v1/delegation-requests", {"email": bob.email, "agent": "researcher", "models": [HAIKU]}
    )
    assert problem(request) == (403, "policy-denied")
    assert request.json()["reason"] == "key-binding-required"
    # Bound, it goes through, and exchanges with its proof.
    key = AgentKey.generate()
    token = token_of(bob.delegate("researcher", [HAIKU], bind_key=key.thumbprint))
    with strict.client() as http:
        proof = key.proof("POST", strict.url + EXCHANGE, token)
        assert exchange(http, token, proof).status_code == 200


def test_an_unbound_token_stops_working_once_the_policy_requires_binding(
    http: httpx.Client, alice: Human, broker: BrokerServer, tmp_path: Path
) -> None:
    token = token_of(alice.delegate("researcher", [HAIKU]))
    assert exchange(http, token, None, "Bearer").status_code == 200
    # The same issuer, keys and Redis, now with a policy that requires binding.
    policy = requiring_policy(tmp_path, broker.settings)
    settings = msgspec.structs.replace(broker.settings, policy_file=str(policy))
    tightened = BrokerServer(settings, port=free_port()).start()
    try:
        with tightened.client() as client:
            answer = exchange(client, token, None, "Bearer")
    finally:
        tightened.stop()
    assert problem(answer) == (403, "policy-denied"), answer.text
    assert answer.json()["reason"] == "key-binding-required"
