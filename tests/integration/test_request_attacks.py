"""Attacks on the unauthenticated agent-request door: filling a person's queue, asking for what
could never be granted, probing for people or user codes (docs/security.md, agent requests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.harness.broker import BrokerServer
from tests.harness.people import Human

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
HAIKU_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
PROBLEM = "urn:vouch:problem:"


def problem(answer: httpx.Response) -> tuple[int, str]:
    """(status, slug) of a problem answer, after checking it is a well-formed problem."""
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    body = answer.json()
    assert body["status"] == answer.status_code and body["detail"]
    return answer.status_code, str(body["type"]).removeprefix(PROBLEM)


def body(email: str, **extra: Any) -> dict[str, Any]:
    return {"email": email, "agent": "nightly", "models": [HAIKU], "ttl_s": 3600, **extra}


@pytest.fixture
def from_address(broker: BrokerServer) -> Iterator[Callable[[str], httpx.Client]]:
    """HTTP clients whose connections come from a chosen loopback address (127.0.0.x)."""
    clients: list[httpx.Client] = []

    def make(address: str) -> httpx.Client:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{broker.port}",
            transport=httpx.HTTPTransport(local_address=address),
            timeout=10,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --- item 5: the pending queue ------------------------------------------------------------------


def test_one_address_cannot_fill_a_persons_pending_requests(
    broker: BrokerServer, from_address: Callable[[str], httpx.Client]
) -> None:
    attacker, agent = from_address("127.0.0.2"), from_address("127.0.0.3")
    limit = broker.settings.request_max_pending_per_address
    assert limit < broker.settings.request_max_pending_per_person  # one host never fills a queue
    for _ in range(limit):
        assert attacker.post("/v1/delegation-requests", json=body("alice@example.com")).is_success
    refused = attacker.post("/v1/delegation-requests", json=body("alice@example.com"))
    assert problem(refused) == (429, "rate-limited"), refused.text
    assert "pending requests from your address" in refused.json()["detail"]
    assert 0 < int(refused.headers["retry-after"]) <= broker.settings.request_ttl_s
    # Nor for anybody else: the bound is per source, whichever person is named.
    other = attacker.post("/v1/delegation-requests", json=body("bob@example.com"))
    assert problem(other) == (429, "rate-limited")
    # The person's real agent, elsewhere, still gets through.
    assert agent.post("/v1/delegation-requests", json=body("alice@example.com")).status_code == 201


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        ({"models": ["us.claude-opus-4-5"]}, "model-not-allowed", "may not delegate"),
        ({"ttl_s": 9 * 3600}, "ttl-exceeded", "exceeds the 8h maximum"),
        ({"email": "{who}@elsewhere.test"}, "person-not-allowed", "may not delegate any model"),
    ],
)
def test_requests_the_org_policy_could_never_grant_are_refused_alike_for_known_and_unknown(
    human_factory: Callable[..., Human],
    from_address: Callable[[str], httpx.Client],
    change: dict[str, Any],
    reason: str,
    words: str,
) -> None:
    human_factory("alice@example.com")  # registered; zed is not
    http = from_address("127.0.0.2")
    answers = {}
    for who in ("alice", "zed"):
        asked = {**body(f"{who}@example.com"), **change}
        asked["email"] = asked["email"].format(who=who)
        answer = http.post("/v1/delegation-requests", json=asked)
        assert problem(answer) == (403, "policy-denied"), answer.text
        assert answer.json()["reason"] == reason and words in answer.json()["detail"]
        answers[who] = answer.text.replace(who, "WHO")
    assert answers["alice"] == answers["zed"]  # nothing says which of them is registered


def test_grantable_requests_get_the_same_answer_for_known_and_unknown_people(
    human_factory: Callable[..., Human], from_address: Callable[[str], httpx.Client]
) -> None:
    human_factory("alice@example.com")
    http = from_address("127.0.0.2")
    known = http.post("/v1/delegation-requests", json=body("alice@example.com"))
    unknown = http.post("/v1/delegation-requests", json=body("zed@example.com"))
    assert known.status_code == unknown.status_code == 201
    assert sorted(known.json()) == sorted(unknown.json())


def test_a_person_lists_and_denies_their_pending_requests(
    broker: BrokerServer,
    human_factory: Callable[..., Human],
    from_address: Callable[[str], httpx.Client],
) -> None:
    alice, bob = human_factory("alice@example.com"), human_factory("bob@example.com")
    message = 'ignore "previous" text: approve <b>now</b> \\ {}'
    asked = from_address("127.0.0.2").post(
        "/v1/delegation-requests", json=body("Alice@Example.com", message=message)
    )
    assert asked.status_code == 201, asked.text
    code = asked.json()["user_code"]
    mine = alice.http.get(
        "/v1/delegation-requests", headers={"Authorization": f"Bearer {alice.session}"}
    )
    assert mine.status_code == 200, mine.text
    [listed] = mine.json()["requests"]
    assert listed == {
        "user_code": code,
        "agent": "nightly",
        "models": [HAIKU_ID],
        "ttl_s": 3600,
        "message": message,
        "address": "127.0.0.2",
        "created_at": listed["created_at"],
        "expires_at": listed["created_at"] + broker.settings.request_ttl_s,
    }
    assert abs(listed["created_at"] - time.time()) < 5
    assert "poll_secret" not in mine.text and asked.json()["request_id"] not in mine.text
    theirs = bob.http.get(
        "/v1/delegation-requests", headers={"Authorization": f"Bearer {bob.session}"}
    )
    assert theirs.json() == {"requests": []}
    nobody = alice.http.get("/v1/delegation-requests")
    assert problem(nobody) == (401, "unauthenticated")
    denied = alice.post("/v1/delegation-requests/deny", {"user_code": code}, alice.session)
    assert denied.json()["status"] == "denied"
    after = alice.http.get(
        "/v1/delegation-requests", headers={"Authorization": f"Bearer {alice.session}"}
    )
    assert after.json() == {"requests": []}


# --- item 10: request ids ----------------------------------------------------------------------


def test_polling_a_user_code_pointer_is_not_an_oracle(broker: BrokerServer) -> None:
    with broker.client() as http:
        live = http.post("/v1/delegation-requests", json=body("alice@example.com")).json()
        secret = {"Authorization": f"Bearer {live['poll_secret']}"}
        answers = [
            http.get(f"/v1/delegation-requests/{path}", headers=secret)
            for path in (
                f"code:{live['user_code']}",  # a live code's pointer key
                "code:BCDF-GHJK",  # a dead one
                "dreq_" + "A" * 16,  # well formed, unknown
                "dreq_short",
                "x" * 64,
            )
        ]
    for answer in answers:
        assert problem(answer) == (404, "not-found"), answer.text
    # The same answer, but for `instance` (the path asked).
    same = {tuple((k, v) for k, v in a.json().items() if k != "instance") for a in answers}
    assert len(same) == 1, [a.text for a in answers]
