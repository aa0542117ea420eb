"""Every exchange outcome reaches the audit trail (issued or refused, and why), cache hits and
repeated refusals counted per interval; and every request reaches the access log."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human, signed_in
from tests.harness.services import RedisServer, wait_for
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws
from tests.integration.test_faults import wait_until_asleep

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
HAIKU_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture
def broker(tmp_path: Path, redis_url: str, sts_gate: StsGate) -> Iterator[BrokerServer]:
    """The usual test broker, counting cache hits and repeated refusals over an hour: what
    it counted is written when it stops (`stop()` in a test, then read)."""
    settings = broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": sts_gate.url},
        audit_exchange_interval_s=3600,
    )
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


def exchange_events(broker: BrokerServer) -> list[dict[str, Any]]:
    """The exchange events in the stream, oldest first, as the audit API types them."""
    stream = redis.Redis.from_url(broker.settings.redis_url).xrange("vouch:audit")
    rows = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in stream]
    events = [row for row in rows if row["event"].startswith("exchange_")]
    for event in events:
        for name in ("models", "denied", "count", "duration_s", "took_ms", "since"):
            if name in event:
                event[name] = json.loads(event[name])
    return events


def without_times(event: dict[str, Any]) -> dict[str, Any]:
    """The event without what changes from run to run (checked for presence)."""
    assert float(event["ts"]) > 0
    if "count" in event:
        assert event["since"] <= float(event["ts"])
        return {k: v for k, v in event.items() if k not in {"ts", "since"}}
    assert event["took_ms"] > 0 and len(event.get("request", "x" * 16)) == 16
    return {k: v for k, v in event.items() if k not in {"ts", "took_ms", "request"}}


def post(broker: BrokerServer, token: str, body: dict[str, Any] | None = None) -> httpx.Response:
    with broker.client(token) as agent:
        return agent.post("/v1/credentials/aws", json=body)


def test_issued_refused_and_counted_exchanges_are_audited(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    done = alice.delegate("researcher", [HAIKU])
    record = done.delegation
    who = {
        "provider": "aws",
        "dlg": record.id,
        "agent": "researcher",
        "sub": record.sub,
        "person": alice.email,
        "cid": record.cid,
    }
    first = post(broker, done.token)
    assert first.status_code == 200, first.text
    [issued] = exchange_events(broker)
    assert issued["request"] == first.headers["x-request-id"]
    assert "token" not in json.dumps(issued).lower()
    assert without_times(issued) == {
        "event": "exchange_issued",
        **who,
        "models": [HAIKU_ID],
        "duration_s": 900,
        "source": "provider",
    }
    for _ in range(4):  # cache hits: counted, written once the interval ends
        assert post(broker, done.token).status_code == 200
    wider = post(broker, done.token, {"models": ["us.claude-opus-4-5"]})
    assert wider.status_code == 403
    assert sts_gate.calls == 1
    _, denied = exchange_events(broker)  # a refusal is written at once
    assert without_times(denied) == {
        "event": "exchange_refused",
        **who,
        "problem": "policy-denied",
        "models": ["us.claude-opus-4-5"],
        "denied": ["us.anthropic.claude-opus-4-5-20251101-v1:0"],
    }
    assert denied["request"] == wider.headers["x-request-id"]
    alice.revoke(record.id)
    for _ in range(3):  # the first refusal at once, the repeats counted
        assert post(broker, done.token).status_code == 401
    first_refusal = exchange_events(broker)[-1]
    assert without_times(first_refusal) == {
        "event": "exchange_refused",
        **who,
        "problem": "token-revoked",
        "handle": "delegation",
    }
    assert len(exchange_events(broker)) == 3
    broker.stop()  # the interval ends: what was counted is written
    _, _, _, hits, repeats = exchange_events(broker)
    assert without_times(hits) == {
        "event": "exchange_issued",
        **who,
        "models": [HAIKU_ID],
        "duration_s": 900,
        "source": "cache",
        "count": 4,
    }
    assert without_times(repeats) == {
        "event": "exchange_refused",
        **who,
        "problem": "token-revoked",
        "handle": "delegation",
        "count": 2,
    }


def test_refusals_before_the_token_is_verified_name_no_one(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", [HAIKU]).token
    dlg = alice.broker.list_delegations()[0].id
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(3):
        assert post(broker, forged).status_code == 401
    sts_gate.throttle_next(10)
    assert post(broker, token).status_code == 503
    broker.stop()
    bad, throttled, repeats = (without_times(e) for e in exchange_events(broker))
    assert bad == {"event": "exchange_refused", "provider": "aws", "problem": "token-invalid"}
    assert (throttled["problem"], throttled["aws_error"], throttled["dlg"]) == (
        "sts-unavailable",
        "Throttling",
        dlg,
    )
    assert repeats == {**bad, "count": 2}


def test_what_is_counted_is_written_each_interval(
    tmp_path: Path, redis_url: str, sts_gate: StsGate
) -> None:
    settings = broker_settings(
        tmp_path, redis_url, aws={"endpoint_url": sts_gate.url}, audit_exchange_interval_s=0.5
    )
    server = BrokerServer(settings).start()
    try:
        wire_aws(server, sts_gate)
        alice = signed_in(server, "alice@example.com", tmp_path / "alice.key.json")
        token = alice.delegate("researcher", [HAIKU]).token
        for _ in range(5):
            assert post(server, token).status_code == 200

        def hits() -> int:  # an interval may end between two hits: count them all
            counted = [e for e in exchange_events(server) if e["source"] == "cache"]
            return sum(int(e["count"]) for e in counted)

        wait_for(lambda: hits() == 4, timeout=5)  # without stopping the broker
        assert exchange_events(server)[0]["source"] == "provider"
    finally:
        server.stop()


def test_with_interval_zero_every_exchange_is_its_own_event(
    tmp_path: Path, redis_url: str, sts_gate: StsGate
) -> None:
    settings = broker_settings(
        tmp_path, redis_url, aws={"endpoint_url": sts_gate.url}, audit_exchange_interval_s=0
    )
    server = BrokerServer(settings).start()
    try:
        wire_aws(server, sts_gate)
        alice = signed_in(server, "alice@example.com", tmp_path / "alice.key.json")
        token = alice.delegate("researcher", [HAIKU]).token
        answers = [post(server, token) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        events = exchange_events(server)
        assert [(e["source"], e["request"]) for e in events] == [
            ("provider", answers[0].headers["x-request-id"]),
            ("cache", answers[1].headers["x-request-id"]),
            ("cache", answers[2].headers["x-request-id"]),
        ]
    finally:
        server.stop()


def test_each_request_is_in_the_access_log_with_who_asked_and_no_token(
    broker: BrokerServer, human_factory: Callable[..., Human], caplog: pytest.LogCaptureFixture
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", [HAIKU]).token
    caplog.set_level(logging.INFO, logger="vouch.access")
    caplog.clear()
    exchanged = post(broker, token)
    with broker.client(alice.session) as http:
        listed = http.get("/v1/delegations")
        unknown = http.get("/no/such/path?token=" + token)
    refused = post(broker, "not-a-token")
    ids = [a.headers["x-request-id"] for a in (exchanged, listed, unknown, refused)]

    def lines() -> list[logging.LogRecord]:  # each is written once its answer is sent
        mine = [r for r in caplog.records if r.__dict__.get("request") in ids]
        return sorted(mine, key=lambda r: ids.index(r.__dict__["request"]))

    wait_for(lambda: len(lines()) == len(ids), timeout=5)
    seen = [(r.getMessage(), r.__dict__["principal"], r.__dict__["status"]) for r in lines()]
    assert seen == [
        ("POST /v1/credentials/aws 200", "agent.researcher.alice@example.com", 200),
        ("GET /v1/delegations 200", alice.email, 200),
        ("GET - 404", None, 404),
        ("POST /v1/credentials/aws 401", None, 401),
    ]
    assert {r.name for r in lines()} == {"vouch.access"}
    assert [r.__dict__["ms"] is None for r in lines()] == [False, False, True, False]
    assert all(r.__dict__["client"] == "127.0.0.1" for r in lines())
    assert token not in caplog.text and str(alice.session) not in caplog.text


def test_the_access_log_can_be_turned_off(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = broker_settings(tmp_path, redis_url, access_log=False)
    server = BrokerServer(settings).start()
    try:
        caplog.set_level(logging.INFO, logger="vouch.access")
        with server.client() as http:
            assert http.get("/healthz").status_code == 200
    finally:
        server.stop()
    assert [r for r in caplog.records if r.name == "vouch.access"] == []


def test_refusals_while_redis_is_down_are_counted_not_waited_on_and_written_once_it_is_back(
    tmp_path: Path, aof_redis: RedisServer, sts_gate: StsGate
) -> None:
    timeout_s = 0.25
    settings = broker_settings(
        tmp_path,
        aof_redis.url,
        aws={"endpoint_url": sts_gate.url},
        audit_exchange_interval_s=3600,
        redis_timeout_s=timeout_s,
    )
    server = BrokerServer(settings).start()
    try:
        wire_aws(server, sts_gate)
        alice = signed_in(server, "alice@example.com", tmp_path / "alice.key.json")
        token = alice.delegate("researcher", [HAIKU]).token
        sleeper = threading.Thread(
            target=lambda: redis.Redis.from_url(aof_redis.url).execute_command(
                "DEBUG", "SLEEP", "4"
            )
        )
        sleeper.start()
        wait_until_asleep(aof_redis.url)
        took = []
        for _ in range(3):
            started = time.monotonic()
            answer = post(server, token)
            took.append(time.monotonic() - started)
            assert answer.json()["type"] == "urn:vouch:problem:store-unavailable"
        sleeper.join()
    finally:
        server.stop()
    # One attempt and one reconnecting retry, each bounded by the timeout (~0.5 s); writing
    # the refusal to the sleeping Redis too would add as much again (room for a loaded
    # machine: the count below tells for sure that no write was tried).
    assert max(took) < 4 * timeout_s + 0.5, took
    [refused] = [e for e in exchange_events(server) if e["event"] == "exchange_refused"]
    assert (refused["problem"], refused["count"]) == ("store-unavailable", 3)


def test_a_persons_own_exchange_is_audited_as_human_access_without_a_delegation(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    alice = human_factory()
    [key] = alice.broker.list_keys()
    with broker.client(alice.session or "") as person:
        issued = person.post("/v1/credentials/aws/self", json={"models": [HAIKU]})
        assert issued.status_code == 200, issued.text
        wider = person.post("/v1/credentials/aws/self", json={"models": ["us.claude-opus-4-5"]})
        assert wider.status_code == 403
    who = {
        "provider": "aws",
        "access": "human",
        "sub": f"user.{alice.email}",
        "person": alice.email,
        "cid": key.cid,
    }
    own, denied = exchange_events(broker)
    assert own["request"] == issued.headers["x-request-id"]
    assert without_times(own) == {
        "event": "exchange_issued",
        **who,
        "models": [HAIKU_ID],
        "duration_s": 3600,
        "source": "provider",
    }
    assert without_times(denied) == {
        "event": "exchange_refused",
        **who,
        "problem": "policy-denied",
        "check": "model-not-allowed",
        "models": ["us.claude-opus-4-5"],
        "denied": ["us.anthropic.claude-opus-4-5-20251101-v1:0"],
    }
    assert sts_gate.calls == 1
