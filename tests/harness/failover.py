"""Failover rounds: a primary paused (SIGSTOP past down-after, then SIGCONT) or killed
(SIGKILL, then restarted) under a stream of revocations through two brokers while exchanges
run, and what came of every revocation.

Each revocation is an admin revocation of one agent (`POST /v1/admin/revocations`), for a
token minted with the broker's key for that agent alone, so each has its own token to probe.
A round counts:
- acknowledged (201), and of those, lost: the handle is missing on a node, or the token is
  accepted again, once the topology has healed;
- stale reads: an exchange of a revoked token that started after the revocation was
  acknowledged and succeeded (200) on either broker;
- unacknowledged: any other answer (the slug says which), later retried until acknowledged.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import jwt
import redis

from broker.keys import KeyRing, load_key_ring
from broker.revocation import not_before_key
from broker.tokens import AGENT_TYP, mint
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.load import Call, Traffic, tally
from tests.harness.people import signed_in
from tests.harness.processes import BrokerProcess
from tests.harness.sts_gate import StsGate
from tests.harness.topology import LocalCluster, LocalSentinel, Node

Fault = Literal["pause", "kill"]
EXCHANGE = "/v1/credentials/aws"
REVOKE = "/v1/admin/revocations"


class Topology(Protocol):
    nodes: list[Node]

    def healed(self) -> bool: ...
    def wait_promoted(self, victim: Node, timeout: float = 30) -> None: ...


def primaries(topology: LocalSentinel | LocalCluster) -> set[int]:
    """The ports of the nodes that are primaries now."""
    if isinstance(topology, LocalSentinel):
        return {topology.master_port()}
    return {n.port for n in topology.owners()}


def victim_of(topology: LocalSentinel | LocalCluster, rng: random.Random) -> Node:
    """The primary to hurt: Sentinel's, or one of the cluster's at random."""
    if isinstance(topology, LocalSentinel):
        return topology.primary()
    return rng.choice(topology.owners())


@dataclass
class Revocation:
    sub: str
    token: str
    via: str
    started: float
    ended: float
    status: int
    slug: str
    detail: str

    @property
    def acknowledged(self) -> bool:
        return self.status == 201


@dataclass
class RoundFigures:
    fault: Fault
    victim: str
    fault_s: float
    seconds: float
    failed_over: bool = False
    """Another node is primary after the round (a pause shorter than the failover is not)."""
    revocations: int = 0
    acknowledged: int = 0
    unacknowledged: dict[str, int] = field(default_factory=dict)
    details: dict[str, int] = field(default_factory=dict)
    """The unacknowledged answers' details (digits blanked), counted."""
    retries_until_acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    probes_after_ack: int = 0
    probes_refused: int = 0
    exchanges: dict[str, int] = field(default_factory=dict)
    longest_unacknowledged_s: float = 0.0


class FailoverRounds:
    """Rounds against one topology through `brokers` (base URLs sharing the same Redis)."""

    def __init__(
        self,
        topology: LocalSentinel | LocalCluster,
        brokers: list[str],
        *,
        admin_session: str,
        agent_token: str,
        live_tokens: list[str],
        keys: KeyRing,
        seed: int = 0,
    ) -> None:
        self.topology = topology
        self.brokers = brokers
        self.admin = {"Authorization": f"Bearer {admin_session}"}
        self.template = jwt.decode(agent_token, options={"verify_signature": False})
        self.live = live_tokens
        self.keys = keys
        self.rng = random.Random(seed)
        self.counter = itertools.count()
        self.person = self.template["sub"].split(".", 2)[2]

    def mint(self) -> tuple[str, str]:
        """A fresh agent sub of the template's person and a token for it alone."""
        sub = f"agent.f{next(self.counter)}.{self.person}"
        claims = {**self.template, "sub": sub, "iat": int(time.time()) - 1}
        return sub, mint(claims, typ=AGENT_TYP, keys=self.keys)

    def revoke(self, client: httpx.Client, via: str, sub: str, token: str) -> Revocation:
        started = time.monotonic()
        try:
            answer = client.post(via + REVOKE, json={"agent": sub}, headers=self.admin)
            status = answer.status_code
            problem = {} if status == 201 else answer.json()
            slug = str(problem.get("type", "")).rsplit(":", 1)[-1]
            detail = str(problem.get("detail", ""))
        except httpx.HTTPError as exc:
            status, slug, detail = 0, type(exc).__name__, str(exc)
        return Revocation(sub, token, via, started, time.monotonic(), status, slug, detail)

    def run(
        self,
        fault: Fault,
        *,
        fault_s: float | None = None,
        interval_s: float = 0.25,
        heal_timeout_s: float = 60,
    ) -> RoundFigures:
        """One round: revocations start, the fault strikes 1 s in, revocations go on until
        the topology has healed, then everything is checked. `fault_s`: how long a pause
        lasts, or how long a killed node stays down after the failover (random if None:
        1.5-4 s, 0.5-3 s)."""
        wait_healed(self.topology, heal_timeout_s)
        victim = victim_of(self.topology, self.rng)
        if fault_s is None:  # a cluster takes longer to fail over than Sentinel
            longest = 4.0 if isinstance(self.topology, LocalSentinel) else 6.0
            fault_s = (
                self.rng.uniform(1.5, longest) if fault == "pause" else self.rng.uniform(0.5, 3.0)
            )
        before = primaries(self.topology)
        done: list[Revocation] = []
        acked: dict[str, tuple[float, str]] = {}  # sub -> (acknowledged at, token)
        stale: list[str] = []
        probes = Counter[str]()
        lock = threading.Lock()
        stop = threading.Event()
        begun = time.monotonic()

        def revoker(via: str) -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    sub, token = self.mint()
                    outcome = self.revoke(client, via, sub, token)
                    with lock:
                        done.append(outcome)
                        if outcome.acknowledged:
                            acked[sub] = (outcome.ended, token)
                    time.sleep(interval_s)

        def prober() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    with lock:
                        targets = list(acked.items())
                    newest = targets[-4:]
                    sample = self.rng.sample(targets, min(8, len(targets)))
                    for sub, (at, token) in [*newest, *sample]:
                        for via in self.brokers:
                            started = time.monotonic()
                            try:
                                answer = client.post(
                                    via + EXCHANGE, headers={"Authorization": f"Bearer {token}"}
                                )
                                status = answer.status_code
                            except httpx.HTTPError:
                                status = 0
                            with lock:
                                probes["after_ack"] += started >= at
                                probes["refused"] += status in (0, 503)
                                if status == 200 and started >= at:
                                    stale.append(f"{sub} via {via}")
                    time.sleep(0.1)

        calls = [
            Call(f"live-{i}", via, "POST", EXCHANGE, token)
            for i, token in enumerate(self.live)
            for via in self.brokers
        ]
        workers = [threading.Thread(target=revoker, args=(via,)) for via in self.brokers]
        workers.append(threading.Thread(target=prober))
        with Traffic(calls, threads=2, max_seconds=300, max_requests=1_000_000) as traffic:
            for worker in workers:
                worker.start()
            time.sleep(1.0)
            inject(self.topology, victim, fault, fault_s)
            try:
                wait_healed(self.topology, heal_timeout_s)
            finally:
                time.sleep(1.0)
                stop.set()
                for worker in workers:
                    worker.join(timeout=30)
        seconds = time.monotonic() - begun
        figures = RoundFigures(fault, repr(victim), round(fault_s, 2), round(seconds, 1))
        figures.failed_over = primaries(self.topology) != before
        figures.revocations = len(done)
        figures.acknowledged = len(acked)
        figures.unacknowledged = tally_revocations(r for r in done if not r.acknowledged)
        figures.details = dict(
            Counter(re.sub(r"\d+", "N", r.detail) for r in done if not r.acknowledged)
        )
        figures.longest_unacknowledged_s = round(longest_gap(done), 2)
        figures.exchanges = tally(traffic.samples)
        figures.probes_after_ack = probes["after_ack"]
        figures.probes_refused = probes["refused"]
        figures.stale_reads = stale
        wait_healed(self.topology, heal_timeout_s)
        figures.retries_until_acknowledged = self.retry_unacknowledged(done)
        figures.lost = self.lost(acked)
        return figures

    def retry_unacknowledged(self, done: list[Revocation]) -> int:
        """What `vouch admin revoke` does: the same request again until acknowledged."""
        retries = 0
        with httpx.Client(timeout=10) as client:
            for outcome in done:
                if outcome.acknowledged:
                    continue
                for attempt in range(20):
                    retries += 1
                    via = self.brokers[attempt % len(self.brokers)]
                    if self.revoke(client, via, outcome.sub, outcome.token).acknowledged:
                        break
                    time.sleep(0.5)
                else:
                    raise AssertionError(f"revocation of {outcome.sub} never acknowledged")
        return retries

    def lost(self, acked: dict[str, tuple[float, str]]) -> list[str]:
        """Acknowledged revocations missing from a node or no longer enforced (asked again
        for 3 s while replicas may still be catching up)."""
        for _ in range(6):
            missing = self._missing(acked)
            if not missing:
                break
            time.sleep(0.5)
        return missing

    def _missing(self, acked: dict[str, tuple[float, str]]) -> list[str]:
        missing = []
        clients = [redis.Redis(port=n.port, socket_timeout=2) for n in self.topology.nodes]
        try:
            for sub, (_, token) in acked.items():
                key = not_before_key("agent", sub)
                owners = [c for c in clients if key_on(c, key) is not None]
                if isinstance(self.topology, LocalSentinel) and len(owners) != len(clients):
                    missing.append(f"{sub}: on {len(owners)} of {len(clients)} nodes")
                if isinstance(self.topology, LocalCluster) and len(owners) != 1 + (
                    self.topology.replicas
                ):
                    missing.append(f"{sub}: on {len(owners)} nodes of its shard")
                for via in self.brokers:
                    answer = httpx.post(
                        via + EXCHANGE, headers={"Authorization": f"Bearer {token}"}, timeout=10
                    )
                    if answer.status_code != 401:
                        missing.append(f"{sub}: {answer.status_code} via {via}")
        finally:
            for client in clients:
                client.close()
        return missing


def key_on(client: redis.Redis, key: str) -> Any:
    """The key's value on this node itself (a cluster node answers MOVED for other shards'
    slots; a cluster replica reads its own data only after READONLY)."""
    try:
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("READONLY")
        pipe.get(key)
        value = pipe.execute(raise_on_error=False)[1]
    except redis.ResponseError:
        return None
    return None if isinstance(value, Exception) else value


def inject(
    topology: LocalSentinel | LocalCluster, victim: Node, fault: Fault, for_s: float
) -> None:
    """Pause `victim` for `for_s`, or kill it, wait for the failover, restart it `for_s` later."""
    if fault == "pause":
        victim.pause()
        time.sleep(for_s)
        victim.resume()
        return
    victim.kill()
    topology.wait_promoted(victim)
    time.sleep(for_s)
    victim.start()


def wait_healed(topology: LocalSentinel | LocalCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if topology.healed():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"topology did not heal within {timeout} s")


def tally_revocations(outcomes: Any) -> dict[str, int]:
    return dict(Counter(f"{r.status} {r.slug}".strip() for r in outcomes))


def longest_gap(done: list[Revocation]) -> float:
    """The longest time between two acknowledgements (revocations were asked throughout)."""
    times = sorted(r.ended for r in done if r.acknowledged)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def write_log(path: Path, figures: RoundFigures) -> None:
    with path.open("a") as out:
        out.write(repr(figures) + "\n")


@contextlib.contextmanager
def two_brokers(
    workdir: Path, topology: LocalSentinel | LocalCluster, gate: StsGate, **settings: Any
) -> Iterator[FailoverRounds]:
    """An in-process broker and a `vouch-broker serve` process on `topology`, an admin and a
    person signed in, ready for rounds. `settings` override the brokers' settings."""
    from tests.integration.conftest import wire_aws

    values: dict[str, Any] = {
        "aws": {"endpoint_url": gate.url},
        "redis_timeout_s": 0.5,
        "revocation_wait_ms": 1000,
        **settings,
    }
    config = broker_settings(workdir, topology.url, **values)
    server = BrokerServer(config).start()
    env = {
        "VOUCH_REDIS_TIMEOUT_S": str(config.redis_timeout_s),
        "VOUCH_REVOCATION_WAIT_MS": str(config.revocation_wait_ms),
        "VOUCH_REVOCATION_REPLICAS": str(config.revocation_replicas),
    }
    process: BrokerProcess | None = None
    try:
        wire_aws(server, gate)
        process = BrokerProcess(config, workdir / "broker2.log", extra_env=env).start()
        admin = signed_in(server, "admin@example.com", workdir / "admin.key.json")
        alice = signed_in(server, "alice@example.com", workdir / "alice.key.json")
        template = admin.delegate("template", ["us.claude-haiku-4-5"]).token
        live = [alice.delegate(f"live-{i}", ["us.claude-haiku-4-5"]).token for i in range(2)]
        assert template is not None and all(live)
        yield FailoverRounds(
            topology,
            [f"http://127.0.0.1:{server.port}", process.base_url],
            admin_session=admin.session or "",
            agent_token=template,
            live_tokens=[t for t in live if t],
            keys=load_key_ring(Path(config.signing_keys or "")),
        )
    finally:
        if process is not None:
            process.stop()
            log = (workdir / "broker2.log").read_text(errors="replace")
            errors = [line for line in log.splitlines() if '"level":"error"' in line]
            if errors:  # the process's errors would vanish with its workdir
                print("broker process errors:\n" + "\n".join(errors[:3]))
        server.stop()
