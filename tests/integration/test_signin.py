"""Enrollment and login with a software key driven through fido2's real client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from vouch_delegate import AssertionRejected

from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.integration.conftest import make_invite

pytestmark = pytest.mark.integration


def test_enroll_login_and_session_verifies_against_served_jwks(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory("alice@example.com")
    assert alice.session is not None
    jwks_client = jwt.PyJWKClient(f"http://127.0.0.1:{broker.port}/.well-known/jwks.json")
    key = jwks_client.get_signing_key_from_jwt(alice.session)
    claims = jwt.decode(
        alice.session, key, algorithms=["ES256"], audience=broker.url, issuer=broker.url
    )
    assert claims["sub"] == "alice@example.com"
    assert claims["amr"] == ["hwk", "uv"]
    assert jwt.get_unverified_header(alice.session)["typ"] == "vouch-session+jwt"


def test_problem_json_for_unknown_route(broker: BrokerServer) -> None:
    answer = httpx.get(f"http://127.0.0.1:{broker.port}/nope")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "urn:vouch:problem:not-found"


def test_second_key_needs_a_session_from_an_existing_key(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    alice = human_factory("alice@example.com")
    spare = Human(str(alice.http.base_url), broker.url, alice.email, tmp_path / "spare.json")
    refused = spare.post("/v1/enroll/begin", {"email": alice.email})
    assert refused.status_code == 400
    assert "invite code or a session" in refused.json()["detail"]
    stranger = human_factory("bob@example.com")
    other = spare.post("/v1/enroll/begin", {"email": alice.email}, stranger.session)
    assert other.json()["type"] == "urn:vouch:problem:permission-denied"
    spare.enroll(token=alice.session, approver=alice)  # alice's key taps: the spare joins
    assert spare.login().count(".") == 2
    begin = alice.post("/v1/login/begin", {"email": alice.email}).json()
    assert len(begin["options"]["publicKey"]["allowCredentials"]) == 2


def test_usernameless_login_with_a_discoverable_credential(
    human_factory: Callable[..., Human],
) -> None:
    alice = human_factory("alice@example.com")
    token = alice.login(email=None)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "alice@example.com"


def test_revoked_person_and_revoked_key_cannot_sign_in(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory("alice@example.com")
    bob = human_factory("bob@example.com")
    assert (
        admin.post("/v1/admin/revocations", {"user": alice.email}, admin.session).status_code == 201
    )
    with pytest.raises(AssertionRejected) as caught:
        alice.login()
    assert caught.value.problem["type"] == "urn:vouch:problem:assertion-rejected"
    bob_cid = jwt.decode(bob.session or "", options={"verify_signature": False})["cid"]
    assert (
        admin.post("/v1/admin/revocations", {"credential": bob_cid}, admin.session).status_code
        == 201
    )
    with pytest.raises(AssertionRejected) as refused:
        bob.login()
    assert refused.value.detail == "this security key has been revoked"
    admin.reinstate(alice.email)  # an admin re-admits alice (a tap), then she enrolls a new key
    code = make_invite(broker.settings, alice.email)
    again = human_factory("alice@example.com", enrolled=False)
    again.device = type(alice.device)(Path(str(alice.device.path) + ".fresh"))
    again.enroll(code)
    assert again.login().count(".") == 2
