"""Resident memory of one broker worker over many exchanges (the RSS curve).

One worker (`--workers 1`, pinned to core 1). First at least 12,000 exchanges that all miss
(new token/duration pairs): more than the credential cache's 10,000-entry bound, so the LRU is
full and evicting for the rest of the run. Then cache-hit exchanges over 1,000 delegations in
wrk runs of `batch_s` seconds (~20,000 exchanges at 4,000/s), with the worker's RSS read
from /proc after each run. Growth is the slope
of a least-squares line through the hit-phase samples, extrapolated to 1,000,000 exchanges
(run `--rss-exchanges 1000000` to measure it instead).
"""

from __future__ import annotations

from typing import Any

from tests.bench.exchange_hit import EXCHANGE
from tests.bench.report import Report, Row
from tests.bench.world import Broker, World, write_lines
from tests.bench.wrk import Wrk

FILL = 12_000


def _batch(wrk: Wrk, broker: Broker, **options: Any) -> int:
    result = wrk.run(broker.url + EXCHANGE, **options)
    if result.errors:
        raise RuntimeError(f"errors during the RSS run: {result.as_dict()}")
    return result.requests


def _slope(points: list[tuple[int, float]]) -> float:
    """MB per exchange by least squares."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def run(world: World, report: Report, total: int, batch_s: float) -> dict[str, Any]:
    hit_tokens = write_lines(world.root / "rss-hit-tokens.txt", world.agent_tokens(1000))
    miss_tokens = write_lines(world.root / "rss-miss-tokens.txt", world.agent_tokens(5))
    wrk = Wrk(world.root, cpus="0")
    post: dict[str, Any] = {"method": "POST", "connections": 16, "seconds": batch_s}
    curve: list[tuple[int, float]] = []
    with Broker(world, 1, cpus="1") as broker:
        curve.append((0, broker.rss_mb()[0]))
        done = 0
        while done < FILL:  # every request a new (token, duration): the LRU fills up
            done += _batch(wrk, broker, tokens=miss_tokens, body="@durations", **post)
        curve.append((done, broker.rss_mb()[0]))
        filled_at = len(curve) - 1
        while done < total:
            done += _batch(wrk, broker, tokens=hit_tokens, **post)
            curve.append((done, broker.rss_mb()[0]))
            print(f"    rss after {done:,} exchanges: {curve[-1][1]:.1f} MB", flush=True)
    steady = curve[filled_at + 1 :]
    slope = _slope(steady[1:] if len(steady) > 2 else steady)
    last = curve[-1][1]
    projected = last + slope * max(0, 1_000_000 - curve[-1][0])
    out: dict[str, Any] = {
        "curve": curve,
        "exchanges": done,
        "start_mb": curve[0][1],
        "after_fill_mb": curve[filled_at][1],
        "end_mb": last,
        "peak_mb": max(y for _, y in curve),
        "slope_mb_per_100k": slope * 100_000,
        "projected_mb_at_1m": projected,
    }
    report.add(
        Row(
            "rss",
            f"worker RSS after {done:,} exchanges (start {curve[0][1]:.0f}, "
            f"cache full {out['after_fill_mb']:.0f})",
            last,
            "MB",
        )
    )
    report.add(
        Row(
            "rss",
            f"worker RSS growth, hit phase (projected {projected:.0f} MB at 1M)",
            out["slope_mb_per_100k"],
            "MB/100k",
        )
    )
    return out
