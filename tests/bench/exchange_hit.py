"""Item 1, exchange with a cache hit, and item 6's HTTP limit, over real HTTP with wrk.

Each setup starts `vouch-broker serve --workers N` as its own process, warms it (the first
exchange per worker is the one STS call), then measures with wrk from another process:
/healthz at saturation (the trivial-endpoint limit), the exchange at saturation, and the
exchange at a fixed moderate rate. wrk, Redis and the fake STS share the machine's two cores
with the broker; the `1w-pinned` setup pins the broker to core 1 and wrk to core 0 (taskset;
Redis and the fake STS float), the cleanest per-core figure this machine allows.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.report import Report, Row
from tests.bench.world import Broker, World, busy_seconds, cpu_seconds
from tests.bench.wrk import Wrk, WrkResult

EXCHANGE = "/v1/credentials/aws"


@dataclass(frozen=True)
class Setup:
    name: str
    workers: int
    broker_cpus: str | None = None
    wrk_cpus: str | None = None
    server: str = "uvicorn"
    tree: Path | None = None  # another checkout's broker (the --baseline run)


SETUPS = (
    Setup("1w-pinned", 1, broker_cpus="1", wrk_cpus="0"),
    Setup("1w", 1),
    Setup("2w", 2),
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    wrk: Wrk, broker: Broker, path: str, *, allow_errors: bool = False, **options: Any
) -> dict[str, Any]:
    """One wrk run plus the broker workers' CPU time per request over it."""
    pids = broker.worker_pids()
    helpers = [broker.proc.pid] if broker.proc and broker.proc.pid not in pids else []
    helpers += broker.world.service_pids()
    before = {pid: cpu_seconds([pid]) for pid in pids}
    ours, machine, children = cpu_seconds(helpers), busy_seconds(), _children_cpu()
    result: WrkResult = wrk.run(broker.url + path, **options)
    used = {pid: cpu_seconds([pid]) - before[pid] for pid in pids}
    total = sum(used.values())
    ours = total + cpu_seconds(helpers) - ours + _children_cpu() - children
    out: dict[str, Any] = dict(result.as_dict())
    out["cpu_us_per_req"] = total / max(1, result.requests) * 1e6
    out["worker_cpu_share"] = [round(v / total, 2) if total else 0 for v in used.values()]
    # CPU that other processes on this shared machine took during the run, in cores.
    out["other_load_cores"] = max(0.0, busy_seconds() - machine - ours) / result.seconds
    if result.errors and not allow_errors:
        raise RuntimeError(f"{path}: {result.errors} errors under load: {out}")
    return out


def run_setup(
    world: World,
    setup: Setup,
    tokens: Path,
    seconds: float,
    *,
    fixed_rates: tuple[float, ...] = (),
    healthz: bool = True,
    overload: int = 0,
) -> dict[str, Any]:
    """Saturation (healthz and exchange) and fixed-rate exchange figures for one setup."""
    assert world.sts is not None
    wrk = Wrk(world.root, cpus=setup.wrk_cpus)
    post: dict[str, Any] = {"method": "POST", "tokens": tokens}
    conns = 16 * setup.workers
    with Broker(world, setup.workers, setup.broker_cpus, setup.server, tree=setup.tree) as broker:
        wrk.run(broker.url + EXCHANGE, connections=conns, seconds=1.5, **post)  # warm up
        out: dict[str, Any] = {"setup": setup.__dict__ | {"tree": str(setup.tree or "")}}
        if healthz:
            out["healthz"] = measure(wrk, broker, "/healthz", connections=conns, seconds=seconds)
        calls = world.sts.calls()
        out["hit"] = measure(wrk, broker, EXCHANGE, connections=conns, seconds=seconds, **post)
        for target in fixed_rates or (out["hit"]["rps"] / 2,):
            out[f"hit@{target:.0f}"] = measure(
                wrk, broker, EXCHANGE, connections=conns, seconds=seconds, rate=target, **post
            )
        if not fixed_rates:
            out["half_load"] = f"hit@{out['hit']['rps'] / 2:.0f}"  # the key of that run
        out["sts_calls_during_hits"] = world.sts.calls() - calls
        if overload:
            # More requests in flight in one worker than its Redis pool (64) has connections.
            out["overload"] = measure(
                wrk,
                broker,
                EXCHANGE,
                allow_errors=True,
                connections=overload,
                seconds=max(2.0, seconds / 2),
                **post,
            )
        out["rss_mb"] = broker.rss_mb()
    return out


def report_setup(report: Report, result: dict[str, Any], label: str) -> None:
    hit = result["hit"]
    health = result.get("healthz")
    report.add(
        Row(
            "hit",
            f"{label}: exchange saturation req/s",
            hit["rps"],
            "req/s",
            health["rps"] if health else None,
            "/healthz req/s, same setup" if health else "",
            f"p50 {hit['p50_ms']:.2f} ms, p99 {hit['p99_ms']:.2f} ms; "
            f"other load {hit.get('other_load_cores', 0):.2f} cores",
        )
    )
    report.add(
        Row(
            "hit",
            f"{label}: exchange p99 at saturation (p50 {hit['p50_ms']:.2f})",
            hit["p99_ms"],
            "ms",
        )
    )
    if "overload" in result:
        run = result["overload"]
        report.add(
            Row(
                "hit",
                f"{label}: exchanges failed with 128 connections (p99 {run['p99_ms']:.0f} ms)",
                100 * run["errors"] / max(1, run["requests"] + run["errors"]),
                "%",
                note="more requests in flight than Redis connections: none may fail",
            )
        )
    for key, run in result.items():
        if key.startswith("hit@"):
            report.add(
                Row(
                    "hit",
                    f"{label}: exchange p99 at {run['rps']:.0f} req/s (p50 {run['p50_ms']:.2f})",
                    run["p99_ms"],
                    "ms",
                    note=f"other load {run.get('other_load_cores', 0):.2f} cores",
                )
            )
    report.add(
        Row(
            "hit",
            f"{label}: broker CPU per exchange (per /healthz {health['cpu_us_per_req']:.0f})"
            if health
            else f"{label}: broker CPU per exchange",
            hit["cpu_us_per_req"],
            "us",
        )
    )
    if health:
        report.add(
            Row(
                "limits",
                f"{label}: /healthz req/s (p99 {health['p99_ms']:.2f} ms)",
                health["rps"],
                "req/s",
            )
        )


def run_bound(world: World, setup: Setup, seconds: float, expected_rps: float) -> dict[str, Any]:
    """The cache-hit exchange of a token bound to the agent's key: each request carries a
    fresh DPoP proof (one line of the proofs file each, made before the run), so the broker
    verifies the proof's signature and records its jti; the token's own verification is the
    cached one. `expected_rps` (the unbound rate, an upper bound) sizes the proofs file: a
    proof used twice would be refused and fail the run."""
    wrk = Wrk(world.root, cpus=setup.wrk_cpus)
    conns = 16 * setup.workers
    htu = world.issuer + EXCHANGE  # the public URL (wrk goes to 127.0.0.1: a proxy's view)

    def proofs(name: str, run_s: float) -> Path:
        count = int(expected_rps * max(1, round(run_s)) * 1.3) + 1000
        return world.proofs(world.root / name, count, htu)

    with Broker(world, setup.workers, setup.broker_cpus, setup.server, tree=setup.tree) as broker:
        warm = proofs("bound-warm.txt", 1.5)
        wrk.run(broker.url + EXCHANGE, connections=conns, seconds=1.5, method="POST", tokens=warm)
        out: dict[str, Any] = {"setup": setup.__dict__ | {"tree": str(setup.tree or "")}}
        run = proofs("bound.txt", seconds)
        out["hit"] = measure(
            wrk, broker, EXCHANGE, connections=conns, seconds=seconds, method="POST", tokens=run
        )
    return out


def report_bound(report: Report, result: dict[str, Any], label: str) -> None:
    hit = result["hit"]
    report.add(
        Row(
            "hit",
            f"{label}: bound (DPoP) exchange saturation req/s",
            hit["rps"],
            "req/s",
            note=f"p50 {hit['p50_ms']:.2f} ms, p99 {hit['p99_ms']:.2f} ms; "
            f"{hit['cpu_us_per_req']:.0f} us CPU each; "
            f"other load {hit.get('other_load_cores', 0):.2f} cores",
        )
    )
