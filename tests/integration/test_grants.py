"""Grant escalation attempts and agent-initiated requests (invariants 3, 4, 9)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human

pytestmark = pytest.mark.integration


def slug(answer: httpx.Response) -> str:
    return str(answer.json()["type"]).rsplit(":", 1)[1]


def begin(human: Human, **grant: Any) -> httpx.Response:
    body = {"agent": "researcher", "models": ["us.claude-haiku-4-5"], "ttl_s": 3600, **grant}
    return human.post("/v1/delegations/begin", body, human.session)


@pytest.mark.parametrize(
    ("grant", "status", "expected", "words"),
    [
        ({"models": ["us.claude-opus-4-5"]}, 403, "policy-denied", "may not delegate"),
        ({"ttl_s": 9 * 3600}, 403, "policy-denied", "exceeds the 8h maximum"),
        ({"agent": "Researcher!"}, 400, "grant-invalid", "agent name"),
        ({"agent": "a" * 33}, 400, "invalid-request", "agent"),
        ({"models": ["claude-sonet-4-5"]}, 400, "grant-invalid", "did you mean"),
        ({"models": ['us.claude-haiku-4-5","*']}, 400, "grant-invalid", "unknown model"),
        ({"models": ["arn:aws:bedrock:*"]}, 400, "grant-invalid", "unknown model"),
        ({"models": []}, 400, "grant-invalid", "at least one model"),
        ({"max_sts_s": 7200}, 400, "grant-invalid", "max_sts_s"),
    ],
)
def test_grants_outside_the_policy_are_refused(
    human_factory: Callable[..., Human],
    grant: dict[str, Any],
    status: int,
    expected: str,
    words: str,
) -> None:
    alice = human_factory()
    answer = begin(alice, **grant)
    assert (answer.status_code, slug(answer)) == (status, expected), answer.text
    assert words.lower() in answer.text.lower()


def test_a_session_alone_cannot_mint_an_agent_token(human_factory: Callable[..., Human]) -> None:
    alice = human_factory()
    proposal = begin(alice).json()
    answer = alice.post(
        "/v1/delegations/complete",
        {"challenge_id": proposal["challenge_id"], "credential": {}},
        alice.session,
    )
    assert (answer.status_code, slug(answer)) == (401, "assertion-rejected")
    no_session = alice.post(
        "/v1/delegations/begin", {"agent": "x", "models": ["us.claude-haiku-4-5"]}
    )
    assert (no_session.status_code, slug(no_session)) == (401, "unauthenticated")


def test_assertion_for_one_grant_cannot_complete_another(
    human_factory: Callable[..., Human],
) -> None:
    alice = human_factory()
    small = begin(alice).json()
    signed_small = alice.sign_assertion(small["options"])
    big = begin(alice, models=["us.claude-haiku-4-5", "us.claude-sonnet-4-5"]).json()
    answer = alice.post(
        "/v1/delegations/complete",
        {"challenge_id": big["challenge_id"], "credential": signed_small},
        alice.session,
    )
    assert (answer.status_code, slug(answer)) == (401, "assertion-rejected")
    assert "challenge" in answer.json()["detail"].lower()


def test_delegation_needs_user_verification(human_factory: Callable[..., Human]) -> None:
    alice = human_factory()
    alice.device.uv_mode = "skip"
    proposal = begin(alice).json()
    answer = alice.post(
        "/v1/delegations/complete",
        {
            "challenge_id": proposal["challenge_id"],
            "credential": alice.sign_assertion(proposal["options"]),
        },
        alice.session,
    )
    assert (answer.status_code, slug(answer)) == (401, "assertion-rejected")


def test_another_persons_challenge_is_refused(human_factory: Callable[..., Human]) -> None:
    alice, bob = human_factory("alice@example.com"), human_factory("bob@example.com")
    proposal = begin(alice).json()
    answer = bob.post(
        "/v1/delegations/complete",
        {
            "challenge_id": proposal["challenge_id"],
            "credential": alice.sign_assertion(proposal["options"]),
        },
        bob.session,
    )
    assert (answer.status_code, slug(answer)) == (401, "challenge-invalid")


def test_bad_input_leaves_no_partial_state(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    for body in ({"agent": 5}, {"models": "x"}, {"ttl_s": -1}, {"surprise": 1}, [1, 2]):
        answer = alice.post("/v1/delegations/begin", body, alice.session)  # type: ignore[arg-type]
        assert answer.status_code == 400, body
        assert answer.headers["content-type"].startswith("application/problem+json")
    with broker.client(alice.session) as http:
        assert http.get("/v1/delegations").json() == {"delegations": []}
        raw = http.post(
            "/v1/delegations/begin",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert raw.status_code == 400


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"ttl_s": 30 * 86400},
            [{"message": "ttl_s must be at most 604800 seconds (7 days)", "key": "ttl_s"}],
        ),
        ({"agent": ""}, [{"message": "agent must not be empty", "key": "agent"}]),
        ({"surprise": 1}, [{"message": "surprise is not a known field", "key": "data"}]),
        (
            {"models": [""]},
            [{"message": "models[0] must not be empty", "key": "models[0]"}],
        ),
    ],
)
def test_bad_input_is_refused_in_plain_words_that_name_the_field(
    human_factory: Callable[..., Human], body: dict[str, Any], errors: list[dict[str, str]]
) -> None:
    alice = human_factory()
    answer = alice.post("/v1/delegations/begin", body, alice.session)
    assert answer.status_code == 400
    problem = answer.json()
    assert problem == {
        "type": "urn:vouch:problem:invalid-request",
        "title": "Invalid request",
        "status": 400,
        "detail": errors[0]["message"],
        "instance": "/v1/delegations/begin",
        "errors": [{**e, "source": "body"} for e in errors],
    }


def test_a_bad_query_parameter_is_named_in_plain_words(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    with broker.client(alice.session) as http:
        answer = http.get("/v1/delegations", params={"all": "perhaps"})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "all must be true or false, not a string"
    assert answer.json()["errors"] == [
        {"message": "all must be true or false, not a string", "key": "all", "source": "query"}
    ]


# --- agent-initiated requests ------------------------------------------------------------------


def ask(
    broker: BrokerServer,
    email: str = "alice@example.com",
    *,
    address: str = "127.0.0.1",
    **extra: Any,
) -> dict[str, Any]:
    """An agent's request, sent from `address` (any 127.0.0.x reaches the broker)."""
    body = {
        "email": email,
        "agent": "nightly",
        "models": ["us.claude-haiku-4-5"],
        "ttl_s": 3600,
        "message": "nightly report run",
        **extra,
    }
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address)) as http:
        answer = http.post(f"http://127.0.0.1:{broker.port}/v1/delegation-requests", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def poll(
    broker: BrokerServer, request: dict[str, Any], secret: str | None = None
) -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{broker.port}/v1/delegation-requests/{request['request_id']}",
        headers={"Authorization": f"Bearer {secret or request['poll_secret']}"},
    )


def test_agent_request_approved_delivers_the_token_once(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    request = ask(broker)
    assert poll(broker, request).json() == {"status": "pending", "interval": 2}
    proposal, done = alice.approve(request["user_code"].lower().replace("-", ""))  # forgiving
    assert proposal.grant.purpose == "nightly report run"
    assert done.request_id == request["request_id"]
    assert done.token is None  # the approver never holds the agent's token
    first = poll(broker, request).json()
    assert first["status"] == "approved" and first["token"].count(".") == 2
    assert poll(broker, request).json()["status"] == "delivered"
    with broker.client(first["token"]) as agent:
        assert agent.post("/v1/credentials/aws").status_code == 200


def test_agent_request_denied_wrong_secret_and_someone_elses_code(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice, bob = human_factory("alice@example.com"), human_factory("bob@example.com")
    request = ask(broker)
    stolen = bob.post("/v1/delegations/begin", {"request_code": request["user_code"]}, bob.session)
    assert (stolen.status_code, slug(stolen)) == (403, "permission-denied")
    wrong = poll(broker, request, secret="guess")
    assert (wrong.status_code, slug(wrong)) == (401, "token-invalid")
    denied = alice.post(
        "/v1/delegation-requests/deny", {"user_code": request["user_code"]}, alice.session
    )
    assert denied.json()["status"] == "denied"
    assert poll(broker, request).json() == {"status": "denied", "interval": 2}
    gone = alice.post(
        "/v1/delegations/begin", {"request_code": request["user_code"]}, alice.session
    )
    assert (gone.status_code, slug(gone)) == (404, "not-found")


def test_pending_requests_are_capped_per_person(broker: BrokerServer) -> None:
    # From five addresses, so the per-address bound (test_request_attacks.py) is not what stops it.
    for i in range(5):
        ask(broker, "carol@example.com", address=f"127.0.0.{10 + i}")
    answer = httpx.post(
        f"http://127.0.0.1:{broker.port}/v1/delegation-requests",
        json={"email": "carol@example.com", "agent": "nightly", "models": ["us.claude-haiku-4-5"]},
    )
    assert (answer.status_code, slug(answer)) == (409, "conflict")


def test_request_message_rejects_control_characters(broker: BrokerServer) -> None:
    answer = httpx.post(
        f"http://127.0.0.1:{broker.port}/v1/delegation-requests",
        json={
            "email": "alice@example.com",
            "agent": "nightly",
            "models": ["us.claude-haiku-4-5"],
            "message": "ok\r\nINFO forged log line",
        },
    )
    assert (answer.status_code, slug(answer)) == (400, "grant-invalid")


def test_decided_requests_free_their_slot_and_code(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    for _ in range(6):  # more than the pending cap: each decided request frees its slot
        request = ask(broker)
        denied = alice.post(
            "/v1/delegation-requests/deny", {"user_code": request["user_code"]}, alice.session
        )
        assert denied.status_code == 200


def test_unapproved_request_expires(tmp_path: Path, redis_url: str) -> None:
    settings = broker_settings(tmp_path, redis_url, request_ttl_s=1)
    server = BrokerServer(settings).start()
    try:
        request = ask(server)
        time.sleep(1.5)
        assert poll(server, request).json()["status"] == "expired"
    finally:
        server.stop()
