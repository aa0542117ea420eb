"""Every exchange outcome reaches the audit trail (issued or refused, and why), cache hits and
repeated refusals counted per interval; and every request reaches the access log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human, signed_in
from tests.harness.services import wait_for
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
HAIKU_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
INTERVAL_S = 1.0


@pytest.fixture
def broker(tmp_path: Path, redis_url: str, sts_gate: StsGate) -> Iterator[BrokerServer]:
    """The usual test broker, counting cache hits and repeated refusals over one second."""
    settings = broker_settings(
        tmp_path,
        redis_url,
        aws={"endpoint_url": sts_gate.url},
        audit_exchange_interval_s=INTERVAL_S,
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
    wait_for(lambda: len(exchange_events(broker)) == 3, timeout=3 * INTERVAL_S)
    _, denied, hits = exchange_events(broker)
    assert without_times(denied) == {
        "event": "exchange_refused",
        **who,
        "problem": "policy-denied",
        "models": ["us.claude-opus-4-5"],
        "denied": ["us.anthropic.claude-opus-4-5-20251101-v1:0"],
    }
    assert denied["request"] == wider.headers["x-request-id"]
    assert without_times(hits) == {
        "event": "exchange_issued",
        **who,
        "models": [HAIKU_ID],
        "duration_s": 900,
        "source": "cache",
        "count": 4,
    }
    alice.revoke(record.id)
    for _ in range(3):  # the first refusal at once, the repeats counted
        assert post(broker, done.token).status_code == 401
    first_refusal = exchange_events(broker)[3]
    assert without_times(first_refusal) == {
        "event": "exchange_refused",
        **who,
        "problem": "token-revoked",
        "handle": "delegation",
    }
    wait_for(lambda: len(exchange_events(broker)) == 5, timeout=3 * INTERVAL_S)
    assert without_times(exchange_events(broker)[4]) == {
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
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(3):
        assert post(broker, forged).status_code == 401
    sts_gate.throttle_next(10)
    assert post(broker, token).status_code == 503
    wait_for(lambda: len(exchange_events(broker)) == 3, timeout=3 * INTERVAL_S)
    # The interval may end before or after the STS refusal: find each by what it is.
    events = [without_times(e) for e in exchange_events(broker)]
    bad = {"event": "exchange_refused", "provider": "aws", "problem": "token-invalid"}
    assert events[0] == bad
    assert {**bad, "count": 2} in events[1:]
    [throttled] = [e for e in events if e["problem"] == "sts-unavailable"]
    assert (throttled["aws_error"], throttled["dlg"]) == (
        "Throttling",
        alice.broker.list_delegations()[0].id,
    )


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


def test_cache_hits_counted_when_the_broker_stops_are_written(
    tmp_path: Path, redis_url: str, sts_gate: StsGate
) -> None:
    settings = broker_settings(
        tmp_path, redis_url, aws={"endpoint_url": sts_gate.url}, audit_exchange_interval_s=3600
    )
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    alice = signed_in(server, "alice@example.com", tmp_path / "alice.key.json")
    token = alice.delegate("researcher", [HAIKU]).token
    for _ in range(3):
        assert post(server, token).status_code == 200
    assert [e["source"] for e in exchange_events(server)] == ["provider"]
    time.sleep(0.1)
    server.stop()
    assert [(e["source"], e.get("count")) for e in exchange_events(server)] == [
        ("provider", None),
        ("cache", 2),
    ]
