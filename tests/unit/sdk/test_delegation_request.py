"""request_delegation's polling, answers and deadlines, with a scripted broker."""

from __future__ import annotations

from typing import Any

import pytest
from vouch_delegate import (
    BrokerUnavailable,
    Conflict,
    DelegationDenied,
    DelegationExpired,
    InvalidResponse,
    NetworkError,
    NotFound,
    request_delegation,
)
from vouch_delegate._agent_key import remembered, thumbprint_of

from tests.unit.sdk.fakes import Clock, FakeTransport

pytestmark = pytest.mark.unit

CREATED = {
    "request_id": "dreq_1",
    "user_code": "BCDF-GHJK",
    "poll_secret": "s3cret",
    "expires_at": 1_800_000_300,
    "interval": 2,
}


def ask(http: FakeTransport, clock: Clock, **options: Any) -> tuple[Any, list[tuple[str, int]]]:
    codes: list[tuple[str, int]] = []
    try:
        result: Any = request_delegation(
            "https://vouch.example.com",
            email="alice@example.com",
            agent="researcher",
            models=["us.claude-haiku-4-5"],
            on_code=lambda code, expires: codes.append((code, expires)),
            transport=http,
            clock=clock,
            sleep=clock.sleep,
            **options,
        )
    except Exception as exc:
        result = exc
    return result, codes


def test_approved_after_polling_returns_the_token() -> None:
    clock = Clock()
    pending = {"status": "pending", "interval": 2}
    http = FakeTransport(CREATED, pending, pending, {"status": "approved", "token": "agent.jwt"})
    token, codes = ask(http, clock, ttl="30m", message="hi")
    assert token == "agent.jwt"
    assert codes == [("BCDF-GHJK", 1_800_000_300)]
    create, *polls = http.requests
    jwk = create["body"].pop("jwk")
    assert create["body"] == {
        "email": "alice@example.com",
        "agent": "researcher",
        "models": ["us.claude-haiku-4-5"],
        "ttl_s": 1800,
        "message": "hi",
    }
    # The request carries a fresh public key (never a private member); this process keeps
    # the key, so the bound token finds it by its thumbprint.
    assert sorted(jwk) == ["crv", "kty", "x", "y"] and jwk["crv"] == "P-256"
    key = remembered(thumbprint_of(jwk))
    assert key is not None and key.public_jwk == jwk
    assert {p["url"] for p in polls} == {"https://vouch.example.com/v1/delegation-requests/dreq_1"}
    assert {p["token"] for p in polls} == {"s3cret"}
    assert {p["method"] for p in polls} == {"GET"}


def test_an_unbound_request_sends_no_key() -> None:
    clock = Clock()
    http = FakeTransport(CREATED, {"status": "approved", "token": "agent.jwt"})
    token, _ = ask(http, clock, bind=False)
    assert token == "agent.jwt"
    assert "jwk" not in http.requests[0]["body"]


def test_a_budget_is_asked_for_in_the_request() -> None:
    clock = Clock()
    http = FakeTransport(CREATED, {"status": "approved", "token": "agent.jwt"})
    token, _ = ask(http, clock, bind=False, budget="5.00")
    assert token == "agent.jwt"
    assert http.requests[0]["body"]["budget"] == "5.00"


def test_polling_backs_off_gently_from_the_server_interval() -> None:
    clock = Clock()
    start = clock.now
    http = FakeTransport(CREATED, {"status": "pending"})
    expired, _ = ask(http, clock, timeout_s=60)
    assert isinstance(expired, DelegationExpired)
    polls = len(http.requests) - 1
    assert 8 <= polls <= 20  # not every 2 s (30 polls), not hourly either
    assert clock.now - start == pytest.approx(60)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": "denied"}, DelegationDenied),
        ({"status": "expired"}, DelegationExpired),
        (NotFound("no such delegation request"), DelegationExpired),
        ({"status": "delivered"}, Conflict),
    ],
)
def test_final_answers_raise(answer: Any, error: type[Exception]) -> None:
    result, _ = ask(FakeTransport(CREATED, answer), Clock())
    assert isinstance(result, error), result


def test_an_outage_while_waiting_only_delays_the_answer() -> None:
    http = FakeTransport(
        CREATED,
        NetworkError("down"),
        BrokerUnavailable("store"),
        {"status": "approved", "token": "t"},
    )
    token, _ = ask(http, Clock())
    assert token == "t"


def test_integer_ttl_is_seconds() -> None:
    http = FakeTransport(CREATED, {"status": "approved", "token": "t"})
    ask(http, Clock(), ttl=600)
    assert http.requests[0]["body"]["ttl_s"] == 600


def test_a_malformed_answer_is_an_invalid_response_not_a_code_to_relay() -> None:
    result, codes = ask(FakeTransport({"request_id": "dreq_1", "user_code": "BCDF-GHJK"}), Clock())
    assert isinstance(result, InvalidResponse)
    assert "missing required field `poll_secret`" in result.detail
    assert codes == []


def test_a_malformed_poll_answer_ends_the_wait_instead_of_passing_for_an_outage() -> None:
    http = FakeTransport(CREATED, {"status": "approved", "token": 42})
    result, _ = ask(http, Clock())
    assert isinstance(result, InvalidResponse)
    assert result.detail.endswith("Expected `str | null`, got `int` - at `$.token`")
    assert len(http.requests) == 2
