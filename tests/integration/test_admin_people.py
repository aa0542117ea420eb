"""The people admins see (`GET /v1/admin/people`, `Registry.people`): every registered
person with their state and keys, paged by email, including those registered before the
`vouch:people` index existed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.registry import PEOPLE, PEOPLE_INDEXED, Registry
from broker.store import connect
from tests.harness.broker import BrokerServer, make_invite
from tests.harness.people import Human

pytestmark = pytest.mark.integration


def people(admin: Human, **query: Any) -> httpx.Response:
    return admin.http.get(
        "/v1/admin/people", params=query, headers={"Authorization": f"Bearer {admin.session}"}
    )


def listed(admin: Human, **query: Any) -> dict[str, Any]:
    answer = people(admin, **query)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def revoke(admin: Human, **handle: str) -> None:
    answer = admin.post("/v1/admin/revocations", handle, admin.session)
    assert answer.status_code == 201, answer.text


def test_admins_list_every_person_with_their_state_and_keys(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory("alice@example.com")
    second = Human(str(alice.http.base_url), alice.origin, alice.email, tmp_path / "second.json")
    spare = second.enroll(make_invite(broker.settings, alice.email))
    bob = human_factory("bob@example.com")
    revoke(admin, credential=spare)
    before = int(time.time())
    revoke(admin, user=bob.email)
    revoke(admin, user="never-enrolled@example.com")  # revoked before it ever enrolled

    page = listed(admin)
    assert page["next"] is None
    by_email = {p["email"]: p for p in page["people"]}
    assert list(by_email) == [
        "admin@example.com",
        "alice@example.com",
        "bob@example.com",
        "never-enrolled@example.com",
    ]
    assert by_email["alice@example.com"]["state"] == "active"
    assert by_email["alice@example.com"]["keys"] == {"active": 1, "revoked": 1}
    assert by_email["bob@example.com"]["state"] == "revoked"
    assert before <= by_email["bob@example.com"]["since"] <= time.time()
    assert by_email["bob@example.com"]["keys"] == {"revoked": 1}
    assert by_email["never-enrolled@example.com"] == {
        "email": "never-enrolled@example.com",
        "state": "revoked",
        "since": by_email["never-enrolled@example.com"]["since"],
        "keys": {},
    }
    assert by_email["admin@example.com"]["keys"] == {"active": 1}
    assert by_email["admin@example.com"]["since"] > 0  # when the first key was registered

    denied = people(alice)
    assert (denied.status_code, denied.json()["detail"]) == (
        403,
        "this needs an admin named in the org policy",
    )
    for limit in (0, 501):
        assert people(admin, limit=limit).status_code == 400


def test_people_page_by_email_without_gaps_or_repeats(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    for name in ("carol", "alice", "dave", "bob"):
        human_factory(f"{name}@example.com")
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        page = listed(admin, limit=2, after=after)
        pages += 1
        seen += [p["email"] for p in page["people"]]
        if page["next"] is None:
            break
        assert page["next"] == seen[-1]
        after = page["next"]
    assert seen == [f"{n}@example.com" for n in ("admin", "alice", "bob", "carol", "dave")]
    assert pages == 3


def test_people_registered_before_the_index_are_listed(
    broker: BrokerServer, human_factory: Callable[..., Human], http: httpx.Client
) -> None:
    admin = human_factory("admin@example.com")
    human_factory("alice@example.com")
    # An agent's request to someone who never enrolled leaves `vouch:user:<email>:dreqs`.
    asked = {"email": "stranger@example.com", "agent": "nightly", "models": ["us.claude-haiku-4-5"]}
    assert http.post("/v1/delegation-requests", json=asked).status_code == 201
    store = redis.Redis.from_url(broker.settings.redis_url)
    assert store.exists("vouch:user:stranger@example.com:dreqs")
    store.delete(PEOPLE, PEOPLE_INDEXED)  # the data of a broker from before the index

    assert [p["email"] for p in listed(admin)["people"]] == [
        "admin@example.com",
        "alice@example.com",
    ]
    assert store.exists(PEOPLE_INDEXED)
    assert store.zrange(PEOPLE, 0, -1) == [b"admin@example.com", b"alice@example.com"]


def test_registry_person_reads_one_person_and_none_for_a_stranger(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory("alice@example.com")

    async def read() -> tuple[Any, Any]:
        client = connect(broker.settings.redis_url, timeout_s=2.0)
        try:
            registry = Registry(client)
            return await registry.person(alice.email), await registry.person("x@example.com")
        finally:
            await client.aclose()

    record, stranger = asyncio.run(read())
    assert stranger is None
    assert record.email == alice.email and record.disabled_since is None
    assert [c.state for c in record.credentials] == ["active"]
    assert record.credentials[0].email == alice.email
