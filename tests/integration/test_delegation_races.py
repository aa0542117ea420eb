"""Races on delegation completion and on agent-request delivery: every limit and every
one-time hand-over holds under parallel requests across replicas (docs/security.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.services import load_policy
from tests.harness.broker import BrokerServer, broker_settings, make_invite
from tests.harness.people import Human, person_at
from tests.harness.services import RedisServer

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
PROBLEM = "urn:vouch:problem:"


def slug(answer: httpx.Response) -> str:
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    return str(answer.json()["type"]).removeprefix(PROBLEM)


def begin(human: Human, **body: Any) -> dict[str, Any]:
    answer = human.post("/v1/delegations/begin", body, human.session)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def complete(human: Human, proposal: dict[str, Any]) -> httpx.Response:
    return human.post(
        "/v1/delegations/complete",
        {
            "challenge_id": proposal["challenge_id"],
            "credential": human.sign_assertion(proposal["options"]),
        },
        human.session,
    )


def ask(base_url: str, email: str = "alice@example.com") -> dict[str, Any]:
    answer = httpx.post(
        f"{base_url}/v1/delegation-requests",
        json={"email": email, "agent": "nightly", "models": [HAIKU], "ttl_s": 3600},
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def delegated_events(redis_url: str, email: str) -> list[dict[bytes, bytes]]:
    stream = redis.Redis.from_url(redis_url).xrange("vouch:audit")
    return [
        fields
        for _, fields in stream
        if fields.get(b"event") == b"delegated" and fields.get(b"actor") == email.encode()
    ]


def stored_delegations(redis_url: str) -> list[bytes]:
    return list(redis.Redis.from_url(redis_url).scan_iter("vouch:dlg:*"))


def active(human: Human) -> list[dict[str, Any]]:
    answer = human.http.get("/v1/delegations", headers={"Authorization": f"Bearer {human.session}"})
    return list(answer.json()["delegations"])


# --- item 7: the active-delegation cap at completion -------------------------------------------


def test_the_active_delegation_cap_holds_at_completion_not_only_at_begin(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    _, org = load_policy(broker.settings)
    cap = org.authorize(alice.email, "a", [HAIKU], 3600).max_active_delegations
    proposals = [begin(alice, agent=f"a{i}", models=[HAIKU], ttl_s=3600) for i in range(cap + 2)]
    answers = [complete(alice, p) for p in proposals]
    assert [a.status_code for a in answers] == [201] * cap + [409, 409], [a.text for a in answers]
    assert {slug(a) for a in answers[cap:]} == {"conflict"}
    assert f"the org policy allows {cap}" in answers[-1].json()["detail"]
    assert len(active(alice)) == cap
    assert len(stored_delegations(broker.settings.redis_url)) == cap
    assert len(delegated_events(broker.settings.redis_url, alice.email)) == cap


# --- item 8: one decision per request ----------------------------------------------------------


def test_approving_one_request_twice_mints_nothing_the_second_time(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    request = ask(f"http://127.0.0.1:{broker.port}")
    first, second = (begin(alice, request_code=request["user_code"]) for _ in range(2))
    assert complete(alice, first).status_code == 201
    again = complete(alice, second)
    assert (again.status_code, slug(again)) == (404, "not-found"), again.text
    assert len(active(alice)) == 1
    assert len(stored_delegations(broker.settings.redis_url)) == 1
    assert len(delegated_events(broker.settings.redis_url, alice.email)) == 1


# --- item 6: the approved token is delivered once, and never at rest ---------------------------


@pytest.fixture
def two_replicas(tmp_path: Path, redis_url: str) -> Iterator[list[BrokerServer]]:
    """Two brokers on one Redis, polls unthrottled so only the delivery logic decides.

    Redis gets 5 s per call rather than the harness's 0.5 s: on a loaded test machine 40
    parallel polls could otherwise meet a 503, which is not what this race is about.
    """
    settings = {"rate_polls_per_min": 100_000, "redis_timeout_s": 5.0}
    servers = [
        BrokerServer(broker_settings(tmp_path, redis_url, **settings)).start() for _ in range(2)
    ]
    yield servers
    for server in servers:
        server.stop()


def approve(human: Human, code: str) -> None:
    done = complete(human, begin(human, request_code=code))
    assert done.status_code == 201, done.text


def parallel_polls(servers: list[BrokerServer], request: dict[str, Any], n: int) -> list[Any]:
    """`n` polls released at once by a barrier, alternating between the replicas."""
    clients = [servers[i % len(servers)].client(request["poll_secret"]) for i in range(n)]
    for client in clients:
        assert client.get("/healthz").status_code == 200  # connections open before the race
    barrier = threading.Barrier(n)
    path = f"/v1/delegation-requests/{request['request_id']}"

    def poll(client: httpx.Client) -> Any:
        barrier.wait()
        return client.get(path)

    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            answers = list(pool.map(poll, clients))
    finally:
        for client in clients:
            client.close()
    assert all(a.status_code == 200 for a in answers), {a.text for a in answers}
    return [a.json() for a in answers]


ROUNDS, POLLS = 5, 40


def test_an_approved_token_is_delivered_once_under_parallel_polls_across_replicas(
    two_replicas: list[BrokerServer], tmp_path: Path
) -> None:
    first = two_replicas[0]
    alice = person_at(first, "alice@example.com", tmp_path / "alice.key.json")
    alice.enroll(make_invite(first.settings, alice.email))
    alice.login()
    deliveries = []
    for _ in range(ROUNDS):
        request = ask(f"http://127.0.0.1:{first.port}")
        approve(alice, request["user_code"])
        answers = parallel_polls(two_replicas, request, POLLS)
        tokens = [a["token"] for a in answers if "token" in a]
        deliveries.append(len(tokens))
        assert sorted({a["status"] for a in answers if "token" not in a}) == ["delivered"]
    print(f"deliveries per round ({ROUNDS} rounds x {POLLS} parallel polls): {deliveries}")
    assert deliveries == [1] * ROUNDS


def redis_contents(client: redis.Redis) -> bytes:
    """Every key and value in Redis, as bytes to search."""
    parts: list[bytes] = []
    for key in client.scan_iter():
        kind = client.type(key)
        parts.append(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"hash":
            parts.extend(b"%s=%s" % kv for kv in client.hgetall(key).items())
        elif kind == b"zset":
            parts.extend(client.zrange(key, 0, -1))
        elif kind == b"set":
            parts.extend(client.smembers(key))
        elif kind == b"stream":
            for _, fields in client.xrange(key):
                parts.extend(b"%s=%s" % kv for kv in fields.items())
    return b"\n".join(parts)


def test_an_approved_token_is_never_at_rest_in_redis_or_its_files(
    tmp_path: Path, aof_redis: RedisServer
) -> None:
    server = BrokerServer(broker_settings(tmp_path, aof_redis.url)).start()
    try:
        alice = person_at(server, "alice@example.com", tmp_path / "alice.key.json")
        alice.enroll(make_invite(server.settings, alice.email))
        alice.login()
        request = ask(f"http://127.0.0.1:{server.port}")
        approve(alice, request["user_code"])
        waiting = redis_contents(redis.Redis.from_url(aof_redis.url))  # approved, not collected
        with server.client(request["poll_secret"]) as agent:
            token = agent.get(f"/v1/delegation-requests/{request['request_id']}").json()["token"]
        after = redis_contents(redis.Redis.from_url(aof_redis.url))
    finally:
        server.stop()
    files = b"".join(p.read_bytes() for p in aof_redis.workdir.rglob("*.aof"))
    assert files, "the AOF holds every write"
    signature = token.rsplit(".", 1)[1].encode()
    for where, data in {"waiting": waiting, "delivered": after, "aof": files}.items():
        assert signature not in data, f"the agent token's signature is readable in {where}"
        assert request["poll_secret"].encode() not in data, f"the poll secret is in {where}"
