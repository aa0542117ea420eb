"""Attacks on sign-in, each refused with its exact problem type (docs/design.md invariants 5, 6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
)
from vouch_delegate import AssertionRejected, InviteInvalid, KeyFlagged, VouchError
from vouch_delegate.authenticators import DEFAULT_PIN, SoftwareAuthenticator

from broker.keys import load_key_ring, public_jwk
from broker.tokens import AGENT_TYP, SESSION_TYP, mint
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human, person_at, to_json
from tests.harness.services import MotoServer
from tests.integration.conftest import make_invite

pytestmark = pytest.mark.integration
PROBLEM = "urn:vouch:problem:"


def problem(answer: httpx.Response) -> str:
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    return str(answer.json()["type"]).removeprefix(PROBLEM)


def refused(error: VouchError) -> str:
    """The problem slug of a refusal raised by the broker client: 401 and the body agree."""
    assert error.status == 401
    assert error.problem["type"] == PROBLEM + error.slug, error.problem
    return error.slug


def begin_login(human: Human) -> dict[str, Any]:
    answer = human.post("/v1/login/begin", {"email": human.email})
    assert answer.status_code == 200
    return dict(answer.json())


def complete_login(human: Human, challenge_id: str, credential: Any) -> httpx.Response:
    return human.post(
        "/v1/login/complete", {"challenge_id": challenge_id, "credential": credential}
    )


def test_replayed_assertion_is_refused(human_factory: Callable[..., Human]) -> None:
    alice = human_factory()
    ceremony = begin_login(alice)
    credential = alice.sign_assertion(ceremony["options"])
    assert complete_login(alice, ceremony["challenge_id"], credential).status_code == 200
    again = complete_login(alice, ceremony["challenge_id"], credential)
    assert (again.status_code, problem(again)) == (401, "challenge-invalid")
    other = begin_login(alice)  # a fresh challenge does not rescue an old signature
    moved = complete_login(alice, other["challenge_id"], credential)
    assert (moved.status_code, problem(moved)) == (401, "assertion-rejected")
    assert "challenge" in moved.json()["detail"].lower()


def test_expired_challenge_is_refused(
    tmp_path: Path, redis_url: str, moto_server: MotoServer
) -> None:
    settings = broker_settings(
        tmp_path, redis_url, challenge_ttl_s=1, aws={"endpoint_url": moto_server.url}
    )
    server = BrokerServer(settings).start()
    try:
        alice = person_at(server, "alice@example.com", tmp_path / "alice.json")
        alice.enroll(make_invite(settings, alice.email))
        ceremony = begin_login(alice)
        credential = alice.sign_assertion(ceremony["options"])
        time.sleep(1.5)
        late = complete_login(alice, ceremony["challenge_id"], credential)
        assert (late.status_code, problem(late)) == (401, "challenge-invalid")
    finally:
        server.stop()


def raw_client(device: SoftwareAuthenticator, origin: str) -> Fido2Client:
    """A client that skips fido2's own origin/RP-id check, as a malicious client would."""
    collector = DefaultClientDataCollector(origin, verify=lambda _rp, _origin: True)

    class Pin:
        def prompt_up(self) -> None: ...
        def request_pin(self, *_: Any) -> str:
            return DEFAULT_PIN

        def request_uv(self, *_: Any) -> bool:
            return True

    return Fido2Client(device, collector, Pin())  # type: ignore[arg-type]


def test_wrong_origin_is_refused(broker: BrokerServer, human_factory: Callable[..., Human]) -> None:
    alice = human_factory()
    ceremony = begin_login(alice)
    opts = PublicKeyCredentialRequestOptions.from_dict(ceremony["options"]["publicKey"])
    phished = raw_client(alice.device, "http://localhost:1").get_assertion(opts).get_response(0)
    answer = complete_login(alice, ceremony["challenge_id"], to_json(phished))
    assert (answer.status_code, problem(answer)) == (401, "assertion-rejected")
    assert "origin" in answer.json()["detail"].lower()


def test_wrong_rp_id_is_refused(broker: BrokerServer, human_factory: Callable[..., Human]) -> None:
    alice = human_factory()
    ceremony = begin_login(alice)
    credential = alice.sign_assertion(ceremony["options"])
    auth_data = bytearray(
        base64.urlsafe_b64decode(credential["response"]["authenticatorData"] + "==")
    )
    auth_data[:32] = hashlib.sha256(b"evil.example").digest()  # signed for another RP
    credential["response"]["authenticatorData"] = b64(bytes(auth_data))
    answer = complete_login(alice, ceremony["challenge_id"], credential)
    assert (answer.status_code, problem(answer)) == (401, "assertion-rejected")
    assert "rp id" in answer.json()["detail"].lower()


def test_assertion_from_unregistered_key_is_refused(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    human_factory()  # alice exists; mallory's key was never registered with this broker
    mallory = person_at(broker, "mallory@example.com", tmp_path / "mallory.json")
    local_rp = Fido2Server(PublicKeyCredentialRpEntity(id="localhost", name="elsewhere"))
    options, _ = local_rp.register_begin(
        PublicKeyCredentialUserEntity(id=b"mallory", name="m", display_name="m"),
        resident_key_requirement="required",
        user_verification="required",
    )
    mallory.client().make_credential(options.public_key)
    ceremony = mallory.post("/v1/login/begin", {}).json()  # usernameless
    answer = complete_login(
        mallory, ceremony["challenge_id"], mallory.sign_assertion(ceremony["options"])
    )
    assert (answer.status_code, problem(answer)) == (401, "assertion-rejected")
    assert "not registered" in answer.json()["detail"]


def test_key_of_another_person_cannot_sign_in_as_alice(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory("alice@example.com")
    mallory = human_factory("mallory@example.com")
    ceremony = begin_login(alice)
    public_key = dict(ceremony["options"]["publicKey"], allowCredentials=[])
    signed = mallory.sign_assertion({"publicKey": public_key})
    answer = complete_login(alice, ceremony["challenge_id"], signed)
    assert (answer.status_code, problem(answer)) == (401, "assertion-rejected")


def test_cloned_key_is_detected_and_flagged(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    alice = human_factory()  # enrolled and logged in once: counter advanced
    clone = alice.device.clone_to(tmp_path / "clone.json")
    alice.login()
    alice.login()  # the original is now ahead of the clone
    twin = Human(str(alice.http.base_url), alice.origin, alice.email, tmp_path / "y", device=clone)
    with pytest.raises(KeyFlagged) as caught:
        twin.login()
    assert refused(caught.value) == "key-flagged"
    with pytest.raises(KeyFlagged) as again:
        alice.login()  # the key is flagged for everyone holding it until an admin acts
    assert refused(again.value) == "key-flagged"
    events = redis.Redis.from_url(broker.settings.redis_url).xrange("vouch:audit")
    assert any(fields[b"event"] == b"key_flagged" for _, fields in events)


FLAGGED_HELP = (
    "an admin must revoke this key and invite you to enroll a new one "
    '(docs/security.md, "Recovering from a flagged key")'
)


def test_a_flagged_key_is_recovered_as_documented_revoked_then_a_new_key_by_invite(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    admin, alice = human_factory("admin@example.com"), human_factory()
    (old,) = [k.cid for k in alice.broker.list_keys()]
    clone = alice.device.clone_to(tmp_path / "clone.json")
    alice.login()
    twin = Human(str(alice.http.base_url), alice.origin, alice.email, tmp_path / "y", device=clone)
    with pytest.raises(KeyFlagged) as caught:
        twin.login()
    # What the person sees: why, what happened to their sessions, and what to do.
    assert caught.value.detail == (
        "signature counter did not increase: this security key may be cloned, so it is "
        "flagged and every session it signed in has ended; " + FLAGGED_HELP
    )
    with pytest.raises(KeyFlagged) as again:
        alice.login()
    assert again.value.detail == "this security key is flagged as possibly cloned; " + FLAGGED_HELP
    # What the admin does: find the key in the audit trail, revoke it, invite a new one.
    flagged = [e for e in admin.broker.read_audit(limit=100) if e["event"] == "key_flagged"]
    assert [e["cid"] for e in flagged if e["actor"] == alice.email] == [old]
    admin.broker.create_revocation(credential=old, reason="flagged as cloned")
    code = admin.invite(alice.email).code
    renewed = person_at(broker, alice.email, tmp_path / "new-key.json")
    new = renewed.enroll(code)
    renewed.login()
    states = {k.cid: k.state for k in renewed.broker.list_keys()}
    assert states == {old: "revoked", new: "active"}
    with pytest.raises(AssertionRejected) as out:  # the old key, clone or not, stays out
        alice.login()
    assert out.value.detail == "this security key has been revoked"


def test_invite_code_is_single_use(broker: BrokerServer, tmp_path: Path) -> None:
    code = make_invite(broker.settings, "bob@example.com")
    bob = person_at(broker, "bob@example.com", tmp_path / "bob.json")
    bob.enroll(code)
    other = person_at(broker, "bob@example.com", tmp_path / "bob2.json")
    with pytest.raises(InviteInvalid) as caught:
        other.enroll(code)
    assert refused(caught.value) == "invite-invalid"


def test_expired_invite_is_refused(tmp_path: Path, redis_url: str) -> None:
    settings = broker_settings(tmp_path, redis_url, invite_ttl_s=1)
    server = BrokerServer(settings).start()
    try:
        code = make_invite(settings, "bob@example.com")
        time.sleep(1.5)
        bob = person_at(server, "bob@example.com", tmp_path / "bob.json")
        with pytest.raises(InviteInvalid) as caught:
            bob.enroll(code)
        assert refused(caught.value) == "invite-invalid"
    finally:
        server.stop()


def test_missing_user_verification_is_refused(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    alice.device.uv_mode = "skip"
    with pytest.raises(AssertionRejected) as caught:
        alice.login()
    assert refused(caught.value) == "assertion-rejected"
    assert "verif" in caught.value.detail.lower()


# --- session tokens (invariant 6) -------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def session_claims(broker: BrokerServer, human_factory: Callable[..., Human]) -> dict[str, Any]:
    alice = human_factory()
    assert alice.session is not None
    return dict(json.loads(base64.urlsafe_b64decode(alice.session.split(".")[1] + "==")))


def call_with(broker: BrokerServer, token: str) -> httpx.Response:
    with broker.client(token) as http:
        return http.get("/v1/delegations")


def test_alg_none_is_refused(broker: BrokerServer, session_claims: dict[str, Any]) -> None:
    token = forge({"alg": "none", "typ": SESSION_TYP}, session_claims)
    answer = call_with(broker, token)
    assert (answer.status_code, problem(answer)) == (401, "token-invalid")


def test_hs256_signed_with_the_public_key_is_refused(
    broker: BrokerServer, session_claims: dict[str, Any]
) -> None:
    ring = load_key_ring(Path(broker.settings.signing_keys or ""))
    jwk = public_jwk(next(iter(ring.public_keys.values())))
    token = forge(
        {"alg": "HS256", "typ": SESSION_TYP, "kid": jwk["kid"]},
        session_claims,
        key=json.dumps(jwk).encode(),
    )
    answer = call_with(broker, token)
    assert (answer.status_code, problem(answer)) == (401, "token-invalid")
    assert "algorithm" in answer.json()["detail"]


def test_unknown_kid_wrong_typ_iss_aud_and_expired_are_refused(
    broker: BrokerServer, session_claims: dict[str, Any], tmp_path: Path
) -> None:
    ring = load_key_ring(Path(broker.settings.signing_keys or ""))
    stranger = broker_settings(tmp_path / "other", broker.settings.redis_url)
    foreign_ring = load_key_ring(Path(stranger.signing_keys or ""))
    now = int(time.time())
    cases = {
        "unknown kid": (mint(session_claims, typ=SESSION_TYP, keys=foreign_ring), "token-invalid"),
        "wrong typ": (mint(session_claims, typ=AGENT_TYP, keys=ring), "token-invalid"),
        "wrong iss": (
            mint({**session_claims, "iss": "http://evil"}, typ=SESSION_TYP, keys=ring),
            "token-invalid",
        ),
        "wrong aud": (
            mint({**session_claims, "aud": "sts.amazonaws.com"}, typ=SESSION_TYP, keys=ring),
            "token-invalid",
        ),
        "expired": (
            mint(
                {**session_claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600},
                typ=SESSION_TYP,
                keys=ring,
            ),
            "token-expired",
        ),
        "not yet valid": (
            mint({**session_claims, "nbf": now + 3600, "iat": now}, typ=SESSION_TYP, keys=ring),
            "token-invalid",
        ),
    }
    for name, (token, expected) in cases.items():
        answer = call_with(broker, token)
        assert (answer.status_code, problem(answer)) == (401, expected), name
    assert call_with(broker, mint(session_claims, typ=SESSION_TYP, keys=ring)).status_code == 200


def test_software_key_is_refused_unless_allowed(
    tmp_path: Path, redis_url: str, moto_server: MotoServer
) -> None:
    settings = broker_settings(tmp_path, redis_url, allow_software_keys=False)
    server = BrokerServer(settings).start()
    try:
        bob = person_at(server, "bob@example.com", tmp_path / "bob.json")
        with pytest.raises(AssertionRejected) as caught:
            bob.enroll(make_invite(settings, bob.email))
        assert refused(caught.value) == "assertion-rejected"
        assert "software authenticators" in caught.value.detail
    finally:
        server.stop()
