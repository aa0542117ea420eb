"""The audit trail as admins read it (`GET /v1/admin/audit`): typed values, filters, paging,
and revocations recorded once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from broker.audit import SCAN_BUDGET
from tests.harness.broker import BrokerServer
from tests.harness.people import Human

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"


def read_audit(admin: Human, **query: Any) -> dict[str, Any]:
    answer = admin.http.get(
        "/v1/admin/audit", params=query, headers={"Authorization": f"Bearer {admin.session}"}
    )
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def events_named(admin: Human, event: str) -> list[dict[str, Any]]:
    return [e for e in read_audit(admin, limit=1000)["events"] if e["event"] == event]


def test_audit_values_are_typed_as_documented(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    done = admin.delegate("researcher", [HAIKU])
    [login] = events_named(admin, "login")
    assert login["uv"] is True
    assert isinstance(login["ts"], float)
    [enrolled] = events_named(admin, "enrolled")
    assert (enrolled["software"], enrolled["uv"]) == (True, True)
    [delegated] = events_named(admin, "delegated")
    assert delegated["expires_at"] == done.delegation.expires_at
    assert delegated["models"] == list(done.delegation.models)
    assert isinstance(delegated["id"], str) and delegated["dlg"] == done.delegation.id
    stream = redis.Redis.from_url(broker.settings.redis_url).xrange("vouch:audit")
    assert {fields[b"event"] for _, fields in stream} >= {b"login", b"enrolled", b"delegated"}


@pytest.mark.parametrize("handle", ["delegation", "user", "credential"])
def test_revoking_twice_records_one_revocation_and_answers_the_first(
    handle: str, broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory("alice@example.com")
    record = alice.delegate("researcher", [HAIKU]).delegation
    value = {"delegation": record.id, "user": alice.email, "credential": record.cid}[handle]
    first = admin.post("/v1/admin/revocations", {handle: value, "reason": "leak"}, admin.session)
    assert first.status_code == 201, first.text
    again = admin.post("/v1/admin/revocations", {handle: value, "reason": "again"}, admin.session)
    assert again.status_code == 201, again.text
    assert again.json()["revoked_at"] == pytest.approx(first.json()["revoked_at"], abs=1)
    assert (first.json()["already_revoked"], again.json()["already_revoked"]) == (False, True)
    revoked = [e for e in events_named(admin, "revoked") if e["subject"] == value]
    assert [(e["actor"], e["reason"]) for e in revoked] == [("admin@example.com", "leak")]
    [repeat] = events_named(admin, "already_revoked")
    assert repeat | {"id": "", "ts": 0} == {
        "id": "",
        "ts": 0,
        "event": "already_revoked",
        "actor": "admin@example.com",
        "handle": handle,
        "subject": value,
        "reason": "again",
        "revoked_by": "admin@example.com",
        "revoked_at": int(first.json()["revoked_at"]),
    }
    if handle == "delegation":  # the record keeps who revoked it first, and why
        [listed] = [d for d in admin.broker.list_delegations(everyone=True) if d.id == record.id]
        assert (listed.revoked_by, listed.revoked_reason) == ("admin@example.com", "leak")


def test_a_person_revoking_their_delegation_twice_gets_the_same_record(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory("alice@example.com")
    record = alice.delegate("researcher", [HAIKU]).delegation
    first = alice.revoke(record.id)
    again = alice.revoke(record.id)
    assert (again.revoked_at, again.revoked_by, again.revoked_reason) == (
        first.revoked_at,
        alice.email,
        "revoked by user",
    )
    assert [e["subject"] for e in events_named(admin, "revoked")] == [record.id]
    assert [e["actor"] for e in events_named(admin, "already_revoked")] == [alice.email]


def test_revoking_an_agent_again_is_a_new_revocation(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    """An agent revoked can be delegated to again: revoking it again ends those tokens too,
    so each revocation is its own event."""
    admin = human_factory("admin@example.com")
    alice = human_factory("alice@example.com")
    sub = alice.delegate("researcher", [HAIKU]).delegation.sub
    first = admin.post("/v1/admin/revocations", {"agent": sub}, admin.session)
    time.sleep(1.1)  # token times are whole seconds: the next token is issued after it
    token = alice.delegate("researcher", [HAIKU]).token
    with broker.client(token) as agent:
        assert agent.post("/v1/credentials/aws").status_code == 200
    again = admin.post("/v1/admin/revocations", {"agent": sub}, admin.session)
    assert again.json()["already_revoked"] is False
    assert again.json()["revoked_at"] > first.json()["revoked_at"]
    with broker.client(token) as agent:
        assert agent.post("/v1/credentials/aws").status_code == 401
    assert [e["subject"] for e in events_named(admin, "revoked")] == [sub, sub]
    assert events_named(admin, "already_revoked") == []


def test_audit_filters_by_person_agent_and_time(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory("alice@example.com")
    bob = human_factory("bob@example.com")
    alice.delegate("researcher", [HAIKU])
    bob.delegate("researcher", [HAIKU])
    time.sleep(0.01)
    middle = time.time()
    alice_writer = alice.delegate("writer", [HAIKU]).delegation
    admin.post("/v1/admin/revocations", {"agent": alice_writer.sub}, admin.session)

    def seen(**query: Any) -> list[tuple[str, object]]:
        page = read_audit(admin, limit=1000, **query)
        assert page["next"] is None
        return [(e["event"], e.get("agent", e.get("subject"))) for e in page["events"]]

    assert seen(person="Alice@Example.com") == [
        ("revoked", alice_writer.sub),
        ("delegated", "writer"),
        ("delegated", "researcher"),
        ("login", None),
        ("enrolled", None),
    ]
    assert seen(agent="researcher") == [("delegated", "researcher")] * 2
    assert seen(agent="agent.researcher.bob@example.com") == [("delegated", "researcher")]
    assert seen(agent=alice_writer.sub) == [
        ("revoked", alice_writer.sub),
        ("delegated", "writer"),
    ]
    assert seen(since=middle) == [("revoked", alice_writer.sub), ("delegated", "writer")]
    assert seen(since=middle, person="bob@example.com") == []
    for bad in ({"person": "not-an-email"}, {"agent": "Not A Name"}, {"since": -1}):
        answer = admin.http.get(
            "/v1/admin/audit", params=bad, headers={"Authorization": f"Bearer {admin.session}"}
        )
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["type"] == "urn:vouch:problem:invalid-request"


def test_audit_pages_follow_next_without_gaps_or_repeats(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    for name in ("one", "two", "three"):
        admin.delegate(name, [HAIKU])
    everything = read_audit(admin, limit=1000)
    assert everything["next"] is None
    paged: list[dict[str, Any]] = []
    before = "+"
    while True:
        page = read_audit(admin, limit=2, before=before)
        paged += page["events"]
        if page["next"] is None:
            break
        before = page["next"]
    assert paged == everything["events"]
    assert len(paged) == 5  # enrolled, login, three delegations


def test_a_filtered_read_looks_at_a_bounded_number_of_entries_then_says_where_to_go_on(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    admin.delegate("researcher", [HAIKU])
    store = redis.Redis.from_url(broker.settings.redis_url)
    pipe = store.pipeline(transaction=False)
    for n in range(SCAN_BUDGET + 500):  # newer than the delegation, and not about anyone
        pipe.xadd("vouch:audit", {"event": "filler", "ts": "1", "n": str(n)})
    pipe.execute()
    first = read_audit(admin, agent="researcher")
    assert first["events"] == []
    assert first["next"] is not None
    second = read_audit(admin, agent="researcher", before=first["next"])
    assert [e["event"] for e in second["events"]] == ["delegated"]
    assert second["next"] is None
