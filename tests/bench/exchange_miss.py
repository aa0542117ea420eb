"""Item 2, exchange with a cache miss: the broker's own cost per exchange, STS excluded.

STS is the zero-latency fake (`fake_sts.py`, its own process), and every request asks for a
(token, duration) pair never asked before, so each one verifies the token, checks revocation,
compiles/looks up the session policy, mints an STS assertion and calls AssumeRoleWithWebIdentity
through botocore. One connection at a time (no queueing): the latency is the cost.
"STS time" is the fake's round trip measured from this process with a keep-alive client and
the same request size, and is subtracted from the exchange's p50 and p99.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.bench.exchange_hit import EXCHANGE, measure
from tests.bench.report import Report, Row, percentiles
from tests.bench.world import Broker, World, write_lines
from tests.bench.wrk import Wrk


def sts_round_trip(world: World, count: int) -> dict[str, float]:
    """The fake STS's round trip for a request the size the broker sends."""
    assert world.sts is not None
    body = urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": "arn:aws:iam::123456789012:role/vouch-agents",
            "RoleSessionName": "agent.bench-agent.bench@example.com",
            "WebIdentityToken": "x" * 900,
            "Policy": "p" * 700,
            "DurationSeconds": "900",
        }
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    conn = http.client.HTTPConnection("127.0.0.1", world.sts.port, timeout=5)
    samples = []
    try:
        for i in range(count + 50):
            start = time.perf_counter()
            conn.request("POST", "/", body=body, headers=headers)
            conn.getresponse().read()
            if i >= 50:
                samples.append(time.perf_counter() - start)
    finally:
        conn.close()
    return percentiles(samples)


def misses(
    world: World, seconds: float, tree: Path | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(every request a miss, the same broker's sequential hits) for the broker in `tree`."""
    assert world.sts is not None
    tokens = write_lines(world.root / "miss-tokens.txt", world.agent_tokens(20))
    wrk = Wrk(world.root, cpus="0")
    post: dict[str, Any] = {"method": "POST", "tokens": tokens, "connections": 1}
    with Broker(world, 1, cpus="1", tree=tree) as broker:
        wrk.run(broker.url + EXCHANGE, seconds=1, **post)  # warm: one miss per token
        calls = world.sts.calls()
        miss = measure(wrk, broker, EXCHANGE, body="@durations", seconds=seconds, **post)
        miss["sts_calls"] = world.sts.calls() - calls
        hit = measure(wrk, broker, EXCHANGE, seconds=max(2.0, seconds / 2), **post)
    if miss["sts_calls"] < miss["requests"]:
        raise RuntimeError(f"expected every request to miss: {miss}")
    return miss, hit


def run(world: World, report: Report, seconds: float, quick: bool) -> dict[str, Any]:
    miss, hit = misses(world, seconds)
    sts = sts_round_trip(world, 500 if quick else 3000)
    out = {
        "miss": miss,
        "hit_sequential": hit,
        "sts_round_trip": sts,
        "overhead_p50_ms": miss["p50_ms"] - sts["p50_ms"],
        "overhead_p99_ms": miss["p99_ms"] - sts["p99_ms"],
    }
    report.add(
        Row(
            "miss",
            f"exchange, cache miss, p50 (p99 {miss['p99_ms']:.2f}), fake STS included",
            miss["p50_ms"],
            "ms",
        )
    )
    report.add(
        Row(
            "miss",
            f"fake STS round trip p50 (p99 {sts['p99_ms']:.3f}), subtracted",
            sts["p50_ms"],
            "ms",
        )
    )
    report.add(
        Row(
            "miss",
            f"broker overhead per miss p50, STS excluded (p99 {out['overhead_p99_ms']:.2f})",
            out["overhead_p50_ms"],
            "ms",
        )
    )
    report.add(
        Row(
            "miss",
            f"same broker, cache hit, 1 connection p50 (p99 {hit['p99_ms']:.2f})",
            hit["p50_ms"],
            "ms",
        )
    )
    report.add(Row("miss", "broker CPU per miss (botocore included)", miss["cpu_us_per_req"], "us"))
    return out
