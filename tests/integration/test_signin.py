"""Enrollment and login with a software key driven through fido2's real client."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import jwt
import pytest

from tests.harness.broker import BrokerServer
from tests.harness.people import Human

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
