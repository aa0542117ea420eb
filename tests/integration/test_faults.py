"""Faults injected while traffic flows: Redis down or slow, STS failing, brokers restarting,
revocations racing exchanges, skewed clocks (docs/design.md sections 3.4, 3.5 and 7,
invariants 1, 6, 7, 8).

Each test prints a `FIGURES` line (run with `-s` to see it) with the traffic it sent and how
the broker answered, so the numbers can be reported.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis
from vouch_delegate import AgentCredentials, BrokerClient, Transport, VouchError, boto3_session

from broker.keys import load_key_ring
from broker.sts import Sts
from broker.tokens import AGENT_TYP, SESSION_TYP, mint
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.load import Call, Traffic, tally
from tests.harness.people import Human, signed_in
from tests.harness.processes import BrokerProcess
from tests.harness.services import RedisServer, wait_for
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
EXCHANGE = "/v1/credentials/aws"
JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")


def figures(name: str, **values: object) -> None:
    print(f"\nFIGURES {name}: " + json.dumps(values, sort_keys=True))


def slug(answer: httpx.Response) -> str:
    return str(answer.json().get("type", "")).rsplit(":", 1)[-1]


def sign_in(server: BrokerServer, tmp_path: Path, email: str) -> Human:
    return signed_in(server, email, tmp_path / f"{email}.key.json")


def local(server: BrokerServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def exchange(base_url: str, token: str, timeout: float = 10) -> httpx.Response:
    return httpx.post(
        base_url + EXCHANGE, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


def start_broker(tmp_path: Path, redis_url: str, gate: StsGate, **overrides: Any) -> BrokerServer:
    settings = broker_settings(tmp_path, redis_url, aws={"endpoint_url": gate.url}, **overrides)
    server = BrokerServer(settings).start()
    wire_aws(server, gate)
    return server


# --- Redis killed and restarted under load ----------------------------------------------------


@pytest.fixture
def durable(tmp_path: Path, aof_redis: RedisServer, sts_gate: StsGate) -> Iterator[BrokerServer]:
    """A broker over a private redis-server with AOF (appendfsync always)."""
    server = start_broker(tmp_path, aof_redis.url, sts_gate)
    yield server
    server.stop()


def test_redis_killed_under_load_refuses_everything_then_recovers_losing_nothing(
    durable: BrokerServer, aof_redis: RedisServer, tmp_path: Path
) -> None:
    alice = sign_in(durable, tmp_path, "alice@example.com")
    live = {f"agent-{i}": alice.delegate(f"agent-{i}", [HAIKU]).token for i in range(2)}
    revoked = alice.delegate("revoked", [HAIKU])
    gone = alice.revoke(revoked.delegation.id)
    assert gone.revoked_at is not None  # acknowledged: must survive the crash
    created = alice.delegate("created", [HAIKU])  # acknowledged just before the crash
    base = local(durable)
    calls = [
        *(Call(label, base, "POST", EXCHANGE, token) for label, token in live.items()),
        Call("revoked", base, "POST", EXCHANGE, revoked.token),
        Call("session", base, "GET", "/v1/delegations", alice.session),
        Call("readyz", base, "GET", "/readyz"),
    ]
    with Traffic(calls, threads=4, max_seconds=30, max_requests=20_000) as traffic:
        time.sleep(1.0)
        # A request that ends while the kill is under way may see either side of it: "before"
        # ends before the kill is sent, the outage starts once the process is gone.
        killing = time.monotonic()
        aof_redis.stop(kill=True)  # SIGKILL: no shutdown save, only what AOF already holds
        down = time.monotonic()
        time.sleep(2.0)
        restarting = time.monotonic()
        aof_redis.start()
        up = time.monotonic()
        recovered = {
            label: traffic.wait_for(label, 200, after=up) for label in (*live, "session", "readyz")
        }
        settled = max(s.ended for s in recovered.values())
        time.sleep(0.5)
    samples = traffic.samples

    before = [s for s in samples if s.ended <= killing]
    outage = [s for s in samples if s.within(down, restarting)]
    wrong = [s for s in outage if (s.status, s.slug) != (503, "store-unavailable") or s.secret]
    assert before and all(s.status == (401 if s.label == "revoked" else 200) for s in before)
    assert len(outage) >= 20, tally(outage)
    assert wrong == [], tally(wrong)
    assert [s for s in samples if s.label == "revoked" and s.status == 200] == []
    after = [s for s in samples if s.started >= settled]
    assert after and all(
        (s.status, s.slug) == ((401, "token-revoked") if s.label == "revoked" else (200, ""))
        for s in after
    ), tally(after)
    recovery_s = settled - up
    assert recovery_s < 5.0

    # Nothing acknowledged was lost: the revocation holds (above) and the delegation lives.
    assert exchange(base, created.token).status_code == 200
    with durable.client(alice.session) as person:
        listed = {d["id"]: d for d in person.get("/v1/delegations").json()["delegations"]}
    assert created.delegation.id in listed
    assert listed[revoked.delegation.id]["revoked_at"] is not None
    figures(
        "redis-kill",
        requests_total=len(samples),
        requests_during_outage=len(outage),
        refused_503=sum(s.status == 503 for s in outage),
        served_wrongly=len(wrong),
        outage_s=round(restarting - down, 2),
        recovery_s=round(recovery_s, 2),
        revoked_token_successes=0,
    )


# --- Redis slow (DEBUG SLEEP) -------------------------------------------------------------------


def wait_until_asleep(url: str) -> None:
    """Return once Redis stops answering (DEBUG SLEEP has begun): a fixed pause before the
    requests let some of them in first on a loaded machine."""
    deadline = time.monotonic() + 5
    while True:
        probe = redis.Redis.from_url(url, socket_timeout=0.05, socket_connect_timeout=0.05)
        try:
            probe.ping()
        except redis.TimeoutError:
            return
        finally:
            probe.close()
        assert time.monotonic() < deadline, "Redis never went to sleep"
        time.sleep(0.01)


def test_slow_redis_fails_requests_within_the_configured_timeout(
    tmp_path: Path, aof_redis: RedisServer, sts_gate: StsGate
) -> None:
    timeout_s = 0.25
    server = start_broker(tmp_path, aof_redis.url, sts_gate, redis_timeout_s=timeout_s)
    try:
        alice = sign_in(server, tmp_path, "alice@example.com")
        token = alice.delegate("researcher", [HAIKU]).token
        base = local(server)
        assert exchange(base, token).status_code == 200
        requests: list[Callable[[httpx.Client], httpx.Response]] = [
            lambda c: c.post(base + EXCHANGE, headers={"Authorization": f"Bearer {token}"}),
            lambda c: c.get(
                base + "/v1/delegations", headers={"Authorization": f"Bearer {alice.session}"}
            ),
            lambda c: c.post(base + "/v1/login/begin", json={"email": alice.email}),
            lambda c: c.get(base + "/readyz"),
        ]
        concurrent_n = 32

        def one(index: int) -> tuple[int, str, float, float]:
            with httpx.Client(timeout=10) as client:
                started = time.monotonic()
                answer = requests[index % len(requests)](client)
                return answer.status_code, slug(answer), started, time.monotonic()

        sleeper = threading.Thread(
            target=lambda: redis.Redis.from_url(aof_redis.url).execute_command(
                "DEBUG", "SLEEP", "5"
            )
        )
        threads_before = threading.active_count()
        sleeper.start()
        wait_until_asleep(aof_redis.url)
        with concurrent.futures.ThreadPoolExecutor(concurrent_n) as pool:
            answers = list(pool.map(one, range(concurrent_n)))
        threads_after = threading.active_count()
        sleeper.join()
        awake = time.monotonic()
        recovered = exchange(base, token)
        recovery_s = time.monotonic() - awake
    finally:
        server.stop()
    # One attempt and one reconnecting retry, each with a connect and a command bounded by the
    # timeout: at most 4 timeouts, plus room for 32 threads on a loaded 2-core machine. A broker
    # that waited for Redis would take ~4.8 s here.
    bound_s = 4 * timeout_s + 1.5
    slowest = max(ended - started for _, _, started, ended in answers)
    assert {(status, kind) for status, kind, _, _ in answers} == {(503, "store-unavailable")}
    assert slowest <= bound_s, slowest
    assert max(ended for *_, ended in answers) < awake  # nobody waited for Redis to wake up
    # No thread per waiting request: at most the sleeper and asyncio's default executor
    # (new Redis connections resolve their address there), whose size is fixed.
    assert threads_after - threads_before <= 1 + min(32, (os.cpu_count() or 1) + 4)
    assert recovered.status_code == 200 and recovery_s < 1.0
    figures(
        "redis-slow",
        concurrent_requests=concurrent_n,
        refused_503=sum(status == 503 for status, *_ in answers),
        served_wrongly=sum(status != 503 for status, *_ in answers),
        redis_timeout_s=timeout_s,
        slowest_s=round(slowest, 3),
        threads_added=threads_after - threads_before,
        bound_s=bound_s,
        recovery_s=round(recovery_s, 3),
    )


# --- STS throttling, 5xx and timeouts -----------------------------------------------------------


BROKER_ATTEMPTS = 3


@pytest.mark.parametrize(
    ("fault", "aws_code"),
    [("throttle", "Throttling"), (500, "InternalFailure"), (503, "ServiceUnavailable")],
)
def test_sts_faults_get_bounded_retries_then_a_clear_503(
    broker: BrokerServer,
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
    caplog: pytest.LogCaptureFixture,
    fault: str | int,
    aws_code: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = human_factory()
    token = alice.delegate("researcher", [HAIKU]).token

    def inject(n: int) -> None:
        if fault == "throttle":
            sts_gate.throttle_next(n)
        else:
            sts_gate.fail_next(n, int(fault))

    inject(100)
    started = time.monotonic()
    refused = exchange(local(broker), token)
    elapsed = time.monotonic() - started
    assert (refused.status_code, slug(refused)) == (503, "sts-unavailable")
    assert refused.json()["aws_code"] == aws_code
    assert int(refused.headers["retry-after"]) >= 1
    assert sts_gate.calls == BROKER_ATTEMPTS  # the broker's own attempts; botocore adds none
    assert elapsed < 1.5  # jittered backoff of at most 0.1 s + 0.2 s between attempts
    sts_gate.reset()
    inject(2)  # a passing fault is absorbed by the retries
    served = exchange(local(broker), token)
    assert served.status_code == 200 and sts_gate.calls == 3
    leaked = [token, alice.session or "", served.json()["SecretAccessKey"]]
    written = caplog.text + refused.text
    assert all(secret not in written for secret in leaked)
    assert JWT.search(written) is None  # neither the agent token nor the STS assertion
    figures(
        f"sts-{fault}",
        sts_calls_per_refused_request=BROKER_ATTEMPTS,
        refused_after_s=round(elapsed, 3),
        served_wrongly=0,
    )


def test_a_slow_sts_is_cut_off_by_the_timeout_and_retried(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    token = human_factory().delegate("researcher", [HAIKU]).token
    sts_gate.delay_next(1, 3.0)  # beyond the broker's 2.5 s STS timeout (VOUCH_AWS_STS_TIMEOUT_S)
    started = time.monotonic()
    answer = exchange(local(broker), token, timeout=30)
    elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert 2.5 <= elapsed < 4.0
    assert sts_gate.calls == 2
    # The abandoned call still reaches moto after its delay: wait, so the next test starts clean.
    wait_for(lambda: len(sts_gate.accepted) == 2, timeout=10, what="the delayed STS call")


def test_sts_timeouts_on_every_attempt_end_in_a_bounded_503(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    # The default STS timeout is 2.5 s; a shorter one keeps this test short. Same code path.
    services = broker.app.state.services
    services.exchange.provider.inner.sts = Sts(
        region="us-east-1", endpoint_url=sts_gate.url, timeout_s=0.5
    )
    token = human_factory().delegate("researcher", [HAIKU]).token
    calls = BROKER_ATTEMPTS
    sts_gate.delay_next(calls, 0.8)
    sts_gate.throttle_next(calls)
    started = time.monotonic()
    answer = exchange(local(broker), token, timeout=30)
    elapsed = time.monotonic() - started
    assert (answer.status_code, slug(answer)) == (503, "sts-unavailable")
    assert answer.json()["aws_code"] == "ReadTimeoutError"
    assert int(answer.headers["retry-after"]) >= 1
    assert calls * 0.5 <= elapsed < calls * 0.5 + 1.0  # the timeouts plus jittered backoff
    assert sts_gate.calls == calls
    wait_for(lambda: len(sts_gate.rejected) == calls, timeout=10, what="delayed STS calls")
    figures("sts-timeout", sts_calls=calls, refused_after_s=round(elapsed, 2), served_wrongly=0)


def test_a_slow_sts_does_not_stall_unrelated_requests(
    broker: BrokerServer, human_factory: Callable[..., Human], sts_gate: StsGate
) -> None:
    people = [human_factory("alice@example.com"), human_factory("bob@example.com")]
    tokens = [p.delegate(f"agent-{i}", [HAIKU]).token for p in people for i in range(4)]
    sts_gate.delay_next(len(tokens), 2.0)  # each distinct delegation needs its own STS call
    base = local(broker)

    def timed(call: Callable[[], httpx.Response]) -> tuple[int, float]:
        started = time.monotonic()
        answer = call()
        return answer.status_code, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
        stalled = [pool.submit(timed, lambda t=t: exchange(base, t, timeout=30)) for t in tokens]
        time.sleep(0.5)  # the exchanges now wait on STS
        probes = {
            path: timed(lambda p=path, a=auth: httpx.get(base + p, headers=a, timeout=30))
            for path, auth in (
                ("/healthz", {}),
                ("/.well-known/jwks.json", {}),  # what STS itself fetches meanwhile
                ("/v1/delegations", {"Authorization": f"Bearer {people[0].session}"}),
            )
        }
        exchanges = [future.result() for future in stalled]
    assert all(status == 200 for status, _ in exchanges)
    for path, (status, seconds) in probes.items():
        assert status == 200 and seconds < 0.5, (path, seconds)
    figures(
        "sts-slow-concurrent",
        distinct_exchanges=len(tokens),
        sts_delay_s=2.0,
        exchange_seconds=sorted(round(seconds, 2) for _, seconds in exchanges),
        unrelated_request_seconds={p: round(s, 3) for p, (_, s) in probes.items()},
    )


# --- Broker processes restarted mid-traffic ----------------------------------------------------


class Agent(threading.Thread):
    """An SDK user forcing an exchange every 50 ms; records every outcome."""

    def __init__(self, server: str, token: str) -> None:
        super().__init__(daemon=True)
        transport = Transport(attempts=12, backoff_s=0.2, max_wait_s=5)
        self.creds = AgentCredentials(server, token=token, transport=transport)
        self.outcomes: list[tuple[float, float, str]] = []  # started, ended, "ok" or error
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.creds.refresh()
                outcome = "ok"
            except VouchError as exc:
                outcome = type(exc).__name__
            self.outcomes.append((started, time.monotonic(), outcome))
            self.stopping.wait(0.05)


def restart(process: BrokerProcess, *, crash: bool) -> None:
    assert process.proc is not None
    if crash:
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait(timeout=10)
        process.proc = None
    else:
        process.stop()
    process.start()  # same port, same settings: a fresh process with an empty memory


@pytest.fixture
def replicas(broker: BrokerServer, tmp_path: Path) -> Iterator[list[BrokerProcess]]:
    processes = [
        BrokerProcess(broker.settings, tmp_path / f"replica-{i}.log").start() for i in range(2)
    ]
    yield processes
    for process in processes:
        process.stop()


def test_agents_ride_through_broker_restarts_and_no_state_lives_in_memory(
    broker: BrokerServer,
    replicas: list[BrokerProcess],
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
) -> None:
    alice = human_factory()
    session = {"Authorization": f"Bearer {alice.session}"}
    first, second = replicas
    revoked = alice.delegate("revoked", [HAIKU])
    assert alice.revoke(revoked.delegation.id).revoked_at is not None
    # A ceremony begun on a replica, and an agent's pending request, both before the restarts.
    proposal = BrokerClient(first.base_url, session=alice.session).delegation_begin(
        agent="late", models=[HAIKU]
    )
    asked = BrokerClient(second.base_url).create_request(
        email=alice.email, agent="nightly", models=[HAIKU], ttl_s=7200
    )
    agents = [
        Agent(replica.base_url, alice.delegate(f"agent-{i}", [HAIKU]).token)
        for i, replica in enumerate([first, second, first, second])
    ]
    boto = boto3_session(
        first.base_url,
        token=alice.delegate("boto", [HAIKU]).token,
        region_name="us-east-1",
    )
    sts = boto.client("sts", endpoint_url=sts_gate.url)
    assert sts.get_caller_identity()["Arn"]
    for agent in agents:
        agent.start()
    time.sleep(0.5)
    marks = {"start": time.monotonic()}
    restart(first, crash=False)  # SIGTERM: graceful
    marks["first"] = time.monotonic()
    time.sleep(0.5)
    restart(second, crash=True)  # SIGKILL mid-request
    marks["second"] = time.monotonic()
    wait_for(  # every agent got credentials again after both restarts
        lambda: all(any(s >= marks["second"] for s, _, _ in a.outcomes) for a in agents),
        timeout=30,
        what="exchanges after the restarts",
    )
    for agent in agents:
        agent.stopping.set()
        agent.join(timeout=60)
    outcomes = [o for agent in agents for o in agent.outcomes]
    failures = [o for o in outcomes if o[2] != "ok"]
    assert failures == []
    slowest = max(ended - started for started, ended, _ in outcomes)
    assert sts.get_caller_identity()["Arn"]  # the boto3 session rode through too

    # Nothing that matters lived in the old processes' memory (fresh clients: new sockets):
    at_first = BrokerClient(first.base_url, session=alice.session)
    done = at_first.delegation_complete(  # the challenge was in Redis
        proposal.challenge_id, alice.sign_assertion(proposal.options)
    )
    assert done.token is not None
    assert exchange(second.base_url, done.token).status_code == 200
    polled = BrokerClient(second.base_url).poll_request(asked.request_id, asked.poll_secret)
    assert polled.status == "pending"
    for replica in replicas:
        refused = exchange(replica.base_url, revoked.token)
        assert (refused.status_code, slug(refused)) == (401, "token-revoked")
        listed = httpx.get(replica.base_url + "/v1/delegations", headers=session)
        assert listed.status_code == 200  # the session is still good after the restart
        assert len(listed.json()["delegations"]) == 7
    figures(
        "broker-restart",
        sdk_exchanges=len(outcomes),
        sdk_failures=len(failures),
        slowest_exchange_s=round(slowest, 2),
        restart_first_s=round(marks["first"] - marks["start"], 2),
    )


# --- Revocation racing exchanges on two replicas -----------------------------------------------


def test_no_exchange_started_after_an_acknowledged_revocation_succeeds(
    broker: BrokerServer,
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
    tmp_path: Path,
) -> None:
    replica = BrokerProcess(broker.settings, tmp_path / "replica.log").start()
    try:
        run_revocation_race(broker, replica, human_factory)
    finally:
        replica.stop()


def run_revocation_race(
    broker: BrokerServer, replica: BrokerProcess, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    sizes = {"alice": 4, "bob": 3, "carol": 3, "dave": 3}
    people = {name: human_factory(f"{name}@example.com") for name in sizes}
    agents = {
        f"{name}-{i}": people[name].delegate(f"agent-{i}", [HAIKU])
        for name, count in sizes.items()
        for i in range(count)
    }
    urls = [local(broker), replica.base_url]
    calls = [
        Call(label, url, "POST", EXCHANGE, done.token)
        for label, done in agents.items()
        for url in urls
    ]

    def revoke(via: str, path: str, body: dict[str, str] | None, person: Human) -> float:
        headers = {"Authorization": f"Bearer {person.session}"}
        if body is None:
            answer = httpx.delete(via + path, headers=headers, timeout=10)
        else:
            answer = httpx.post(via + path, json=body, headers=headers, timeout=10)
        assert answer.status_code in (200, 201), answer.text
        return time.monotonic()  # acknowledged: from now on no exchange may succeed

    acked: dict[str, float] = {}
    with Traffic(calls, threads=8, max_seconds=30, max_requests=12_000) as traffic:
        time.sleep(3.0)
        asked = time.monotonic()
        dlg = agents["alice-0"].delegation.id
        acked["alice-0"] = revoke(replica.base_url, f"/v1/delegations/{dlg}", None, people["alice"])
        sub = agents["alice-1"].delegation.sub
        acked["alice-1"] = revoke(urls[0], "/v1/admin/revocations", {"agent": sub}, admin)
        at = revoke(replica.base_url, "/v1/admin/revocations", {"user": "bob@example.com"}, admin)
        acked.update({f"bob-{i}": at for i in range(3)})
        cid = agents["carol-0"].delegation.cid
        at = revoke(urls[0], "/v1/admin/revocations", {"credential": cid}, admin)
        acked.update({f"carol-{i}": at for i in range(3)})
        time.sleep(6.0)
    samples = traffic.samples

    late = [s for s in samples if s.label in acked and s.started >= acked[s.label]]
    late_successes = [s for s in late if s.status == 200]
    assert late_successes == [], tally(late_successes)
    assert late and all((s.status, s.slug) == (401, "token-revoked") for s in late), tally(late)
    early = [s for s in samples if s.ended <= asked]
    for label in agents:  # every agent worked on both replicas before the revocations
        assert {s.base_url for s in early if s.label == label and s.status == 200} == set(urls)
    kept = [s for s in samples if s.label not in acked]
    assert kept and all(s.status == 200 for s in kept), tally(kept)
    in_flight = [
        s
        for s in samples
        if s.label in acked and s.started < acked[s.label] <= s.ended and s.status == 200
    ]
    lags = [s.ended - acked[s.label] for s in in_flight]
    figures(
        "revocation-race",
        requests_total=len(samples),
        per_replica={url: sum(s.base_url == url for s in samples) for url in urls},
        seconds=round(max(s.ended for s in samples) - min(s.started for s in samples), 2),
        agents=len(agents),
        revoked_agents=len(acked),
        requests_for_revoked_after_ack=len(late),
        successes_after_ack=len(late_successes),
        successes_in_flight_at_ack=len(in_flight),
        in_flight_max_ms_after_ack=round(1000 * max(lags, default=0.0), 1),
    )


@pytest.fixture
def replica(broker: BrokerServer, tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(broker.settings, tmp_path / "replica.log").start()
    yield process
    process.stop()


def slow_exchanges(
    urls: list[str], token: str, n: int
) -> tuple[list[concurrent.futures.Future[tuple[float, float, int, str]]], Callable[[], None]]:
    """`n` cache-missing exchanges of one token over `urls` (each asks its own duration, so no
    two share a cache key or a single flight); their futures and a function that waits."""

    def one(index: int) -> tuple[float, float, int, str]:
        started = time.monotonic()
        answer = httpx.post(
            urls[index % len(urls)] + EXCHANGE,
            json={"duration_s": 900 + 60 * index},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        return (
            started,
            time.monotonic(),
            answer.status_code,
            slug(answer) if answer.is_error else "",
        )

    pool = concurrent.futures.ThreadPoolExecutor(n)
    return [pool.submit(one, i) for i in range(n)], lambda: pool.shutdown(wait=True)


def revoke_delegation(via: str, person: Human, dlg_id: str) -> float:
    answer = httpx.delete(
        f"{via}/v1/delegations/{dlg_id}",
        headers={"Authorization": f"Bearer {person.session}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return time.monotonic()  # acknowledged


def test_exchanges_waiting_on_a_slow_sts_are_refused_once_a_revocation_is_acknowledged(
    broker: BrokerServer,
    replica: BrokerProcess,
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
) -> None:
    """32 cache-missing exchanges over two replicas wait on a slow STS while the delegation is
    revoked: none may deliver credentials after the DELETE was acknowledged."""
    alice = human_factory()
    urls = [local(broker), replica.base_url]
    n = 32
    done = alice.delegate("researcher", [HAIKU])
    # STS answers only once the revocation is acknowledged, however long that takes on a
    # loaded machine (a fixed delay let some answers arrive, rightly served, before it).
    sts_gate.hold()
    assert done.token is not None
    try:
        futures, wait = slow_exchanges(urls, done.token, n)
        wait_for(lambda: sts_gate.calls == n, timeout=10, what="every exchange waiting on STS")
        acked = revoke_delegation(replica.base_url, alice, done.delegation.id)
    finally:
        sts_gate.release()
    wait()
    answers = [f.result() for f in futures]
    assert all(started < acked for started, *_ in answers)  # all began before the revocation
    delivered_late = [
        round(ended - acked, 3)
        for _, ended, status, _ in answers
        if status == 200 and ended > acked
    ]
    assert delivered_late == []
    assert sorted({(status, kind) for *_, status, kind in answers}) == [(401, "token-revoked")]
    # STS did issue them: the broker withheld them. (At least n: on a loaded machine a call that
    # outlives the STS client's read timeout is retried, and STS issues that one too.)
    assert len(sts_gate.accepted) >= n
    # The revocation went through the other replica, so only the re-check can have dropped
    # what STS issued from this replica's cache.
    cached = broker.app.state.services.exchange.provider.entries
    assert [key for key in cached if key[0] == done.delegation.id] == []
    # Nothing issued for the revoked delegation lingers in either replica's cache: a fresh
    # token for another agent still works, the revoked one stays refused everywhere.
    other = alice.delegate("other", [HAIKU]).token
    assert other is not None
    for url in urls:
        assert exchange(url, other).status_code == 200
        refused = exchange(url, done.token)
        assert (refused.status_code, slug(refused)) == (401, "token-revoked")
    figures(
        "revocation-during-slow-sts",
        exchanges=n,
        answered_200_after_ack=len(delivered_late),
        refused_token_revoked=sum(status == 401 for *_, status, _ in answers),
    )


def test_the_window_left_after_an_acknowledged_revocation_is_one_round_trip(
    broker: BrokerServer,
    replica: BrokerProcess,
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
) -> None:
    """Revocations timed to land while STS answers arrive: a success may still end after the
    acknowledgement only when its last revocation check ran before the revocation was
    written, so it ends within about one Redis round trip of the acknowledgement."""
    alice = human_factory()
    urls = [local(broker), replica.base_url]
    n, rounds, sts_delay_s = 16, 6, 0.6
    lags: list[float] = []
    margins: list[float] = []  # how long before the acknowledgement the other successes ended
    outcomes: Counter[tuple[int, str]] = Counter()
    for index in range(rounds):
        done = alice.delegate(f"round-{index}", [HAIKU])
        sts_gate.reset()
        sts_gate.delay_next(n, sts_delay_s)
        assert done.token is not None
        futures, wait = slow_exchanges(urls, done.token, n)
        wait_for(lambda: sts_gate.calls == n, timeout=10, what="every exchange waiting on STS")
        # Land the revocation among the STS answers: 0.55 s to 0.7 s after the last call.
        time.sleep(sts_delay_s - 0.05 + 0.03 * index)
        acked = revoke_delegation(urls[index % 2], alice, done.delegation.id)
        wait()
        for _, ended, status, kind in (f.result() for f in futures):
            outcomes[(status, kind)] += 1
            if status == 200 and ended > acked:
                lags.append(ended - acked)
            elif status == 200:
                margins.append(acked - ended)
    window_ms = round(1000 * max(lags, default=0.0), 1)
    # Alone this is under 50 ms; beside another test on 2 shared cores the answers' own
    # scheduling reached 243 ms. What must never happen (credentials delivered from an STS
    # answer that came after the acknowledgement) is asserted exactly by the slow-STS test
    # above; this one bounds how late a success checked before the write can end.
    assert window_ms < 500, sorted(round(lag, 3) for lag in lags)  # the issue saw up to 630 ms
    assert set(outcomes) <= {(200, ""), (401, "token-revoked")}, outcomes
    assert outcomes[(401, "token-revoked")] > 0  # the revocations did land mid-flight
    figures(
        "revocation-window",
        rounds=rounds,
        exchanges=n * rounds,
        outcomes={f"{s} {k}".strip(): c for (s, k), c in sorted(outcomes.items())},
        answered_200_after_ack=len(lags),
        max_window_after_ack_ms=window_ms,
        closest_success_before_ack_ms=round(1000 * min(margins, default=0.0), 1),
    )


# --- Clock skew ---------------------------------------------------------------------------------


def skewed(claims: dict[str, Any], now: int, case: str, leeway: int) -> dict[str, Any]:
    hour_ago = now - 3600
    changes = {
        "future, within leeway": {"iat": now + leeway - 10, "nbf": now + leeway - 10},
        "future, beyond leeway": {"iat": now + leeway + 30, "nbf": now},
        "not before, within leeway": {"iat": now, "nbf": now + leeway - 10},
        "not before, beyond leeway": {"iat": now, "nbf": now + leeway + 30},
        "expired, within leeway": {"iat": hour_ago, "nbf": hour_ago, "exp": now - leeway + 10},
        "expired, beyond leeway": {"iat": hour_ago, "nbf": hour_ago, "exp": now - leeway - 30},
    }[case]
    return {**claims, **changes}


@pytest.mark.parametrize(
    ("case", "status", "problem", "words"),
    [
        ("future, within leeway", 200, "", ""),
        ("future, beyond leeway", 401, "token-invalid", "token issued in the future"),
        ("not before, within leeway", 200, "", ""),
        ("not before, beyond leeway", 401, "token-invalid", "token not valid yet"),
        ("expired, within leeway", 200, "", ""),
        ("expired, beyond leeway", 401, "token-expired", "token expired"),
    ],
)
def test_clock_skew_within_the_leeway_passes_beyond_it_fails(
    broker: BrokerServer,
    human_factory: Callable[..., Human],
    case: str,
    status: int,
    problem: str,
    words: str,
) -> None:
    alice = human_factory()
    token = alice.delegate("researcher", [HAIKU]).token
    ring = load_key_ring(Path(broker.settings.signing_keys or ""))
    leeway = broker.settings.clock_leeway_s
    now = int(time.time())
    unverified = {"verify_signature": False}
    agent = skewed(jwt.decode(token, options=unverified), now, case, leeway)
    person = skewed(jwt.decode(alice.session or "", options=unverified), now, case, leeway)
    answers = {
        "agent": exchange(local(broker), mint(agent, typ=AGENT_TYP, keys=ring)),
        "session": httpx.get(
            local(broker) + "/v1/delegations",
            headers={"Authorization": f"Bearer {mint(person, typ=SESSION_TYP, keys=ring)}"},
        ),
    }
    for kind, answer in answers.items():
        assert answer.status_code == status, (kind, answer.text)
        if status != 200:
            assert slug(answer) == problem, kind
            assert answer.json()["detail"] == words, kind
