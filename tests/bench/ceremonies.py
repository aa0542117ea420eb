"""Item 3, the two FIDO2 ceremonies a person goes through: sign-in and delegation.

The person is the test harness's `Human` with the software authenticator, talking through
the SDK's `BrokerClient`. Each ceremony is timed in three parts: the server's `begin`, the
authenticator (client side: CTAP2 through python-fido2, PIN, P-256 signature; a YubiKey adds
a human tap on top), and the server's `complete` (assertion verification, counter update in
Redis, token mint, audit), each measured from this process as an HTTP round trip on
loopback (plus the client's decoding of the answer). The broker runs on core 1, this
process on core 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from vouch_delegate._messages import Ceremony, DelegationProposal

from tests.bench.report import Report, Row, percentiles
from tests.bench.world import MODEL, Broker, World
from tests.harness.people import Human


def _ceremony(
    human: Human,
    begin: Callable[[], Ceremony | DelegationProposal],
    complete: Callable[[str, Any], Any],
) -> tuple[float, float, float]:
    clock = time.perf_counter
    t0 = clock()
    started = begin()
    t1 = clock()
    credential = human.sign_assertion(started.options)
    t2 = clock()
    complete(started.challenge_id, credential)
    return t1 - t0, t2 - t1, clock() - t2


def run(world: World, report: Report, count: int) -> dict[str, Any]:
    pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    mask = os.sched_getaffinity(0) if pinned else set()
    with Broker(world, 1, cpus="1" if pinned else None) as broker:
        human = world.enroll(broker, "ceremony@example.com")
        if pinned:
            os.sched_setaffinity(0, {0})
        try:
            login = [_login(human) for _ in range(count + 3)][3:]
            delegate = [_delegate(human) for _ in range(count + 3)][3:]
        finally:
            if pinned:
                os.sched_setaffinity(0, mask)
    out: dict[str, Any] = {}
    for name, runs in (("login", login), ("delegation", delegate)):
        parts = {
            "begin": percentiles([r[0] for r in runs]),
            "authenticator": percentiles([r[1] for r in runs]),
            "complete": percentiles([r[2] for r in runs]),
            "total": percentiles([sum(r) for r in runs]),
        }
        out[name] = parts
        for part in ("begin", "complete", "authenticator"):
            side = "client" if part == "authenticator" else "server"
            p = parts[part]
            report.add(
                Row(
                    "ceremony",
                    f"{name} {part} ({side}) p50 (p99 {p['p99_ms']:.2f})",
                    p["p50_ms"],
                    "ms",
                )
            )
    return out


def _login(human: Human) -> tuple[float, float, float]:
    def begin() -> Ceremony:
        return human.broker.login_begin(human.email)

    def complete(challenge_id: str, credential: Any) -> None:
        human.session = human.broker.login_complete(challenge_id, credential).token

    return _ceremony(human, begin, complete)


def _delegate(human: Human) -> tuple[float, float, float]:
    def begin() -> DelegationProposal:
        return human.broker.delegation_begin(agent="ceremony-agent", models=[MODEL], ttl_s=3600)

    def complete(challenge_id: str, credential: Any) -> None:
        human.broker.delegation_complete(challenge_id, credential)

    return _ceremony(human, begin, complete)
