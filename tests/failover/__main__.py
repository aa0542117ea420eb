"""The failover soak: `make soak-failover ROUNDS=20` (or `python -m tests.failover`).

For each topology (Sentinel: a primary, 2 replicas, 3 sentinels, down-after 1 s; Cluster:
3 primaries with a replica each, node timeout 1 s), ROUNDS pause rounds and ROUNDS kill
rounds under a stream of revocations through two brokers while exchanges run
(tests/harness/failover.py). Prints one line per round and the totals; exits 1 if any
acknowledged revocation was lost or read stale.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.harness.failover import RoundFigures, two_brokers
from tests.harness.services import MotoServer
from tests.harness.sts_gate import StsGate
from tests.harness.topology import LocalCluster, LocalSentinel


def build(kind: str, workdir: Path) -> LocalSentinel | LocalCluster:
    if kind == "sentinel":
        return LocalSentinel(workdir / "sentinel", replicas=2).start()
    return LocalCluster(workdir / "cluster").start()


def totals(rounds: list[RoundFigures]) -> dict[str, Any]:
    unacked: dict[str, int] = {}
    for r in rounds:
        for what, count in r.unacknowledged.items():
            unacked[what] = unacked.get(what, 0) + count
    return {
        "rounds": len(rounds),
        "failed_over": sum(r.failed_over for r in rounds),
        "revocations": sum(r.revocations for r in rounds),
        "acknowledged": sum(r.acknowledged for r in rounds),
        "unacknowledged": unacked,
        "retries_until_acknowledged": sum(r.retries_until_acknowledged for r in rounds),
        "lost": sum(len(r.lost) for r in rounds),
        "stale_reads": sum(len(r.stale_reads) for r in rounds),
        "probes_after_ack": sum(r.probes_after_ack for r in rounds),
        "exchanges": sum(sum(r.exchanges.values()) for r in rounds),
        "exchanges_refused": sum(
            n for r in rounds for what, n in r.exchanges.items() if not what.startswith("200")
        ),
        "longest_unacknowledged_s": max((r.longest_unacknowledged_s for r in rounds), default=0),
        "mean_unacknowledged_s": round(
            sum(r.longest_unacknowledged_s for r in rounds) / max(1, len(rounds)), 2
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.failover", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="pause and kill rounds each")
    parser.add_argument(
        "--topology", nargs="+", choices=["sentinel", "cluster"], default=["sentinel", "cluster"]
    )
    parser.add_argument("--replicas", type=int, default=None, help="VOUCH_REVOCATION_REPLICAS")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.getLogger("vouch").setLevel(logging.ERROR)  # every refused request logs a warning
    moto = MotoServer().start()
    try:
        summary = soak(args, moto)
    finally:
        moto.stop()
    print("TOTALS " + json.dumps(summary, indent=2))
    bad = any(t["lost"] or t["stale_reads"] for k in summary.values() for t in k.values())
    return 1 if bad else 0


def soak(args: argparse.Namespace, moto: MotoServer) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    with StsGate(moto) as gate:
        for kind in args.topology:
            with tempfile.TemporaryDirectory(prefix=f"vouch-soak-{kind}-") as tmp:
                workdir = Path(tmp)
                topology = build(kind, workdir)
                # A cluster must be told its replicas per primary (the broker checks it).
                replicas = args.replicas
                if replicas is None and isinstance(topology, LocalCluster):
                    replicas = topology.replicas
                overrides = {} if replicas is None else {"revocation_replicas": replicas}
                try:
                    with two_brokers(workdir, topology, gate, **overrides) as bench:
                        bench.rng.seed(args.seed)
                        figures = {"pause": [], "kill": []}  # type: dict[str, list[RoundFigures]]
                        for index in range(args.rounds * 2):
                            fault = "pause" if index % 2 == 0 else "kill"
                            started = time.monotonic()
                            done = bench.run(fault)
                            figures[fault].append(done)
                            shown = dataclasses.asdict(done)
                            for many in ("lost", "stale_reads"):  # counts, and a few examples
                                shown[many] = {
                                    "count": len(done_list := shown[many]),
                                    "first": done_list[:3],
                                }
                            print(
                                f"{kind} {fault} #{index // 2 + 1}: "
                                + json.dumps(shown)
                                + f" ({time.monotonic() - started:.0f} s)",
                                flush=True,
                            )
                        summary[kind] = {f: totals(r) for f, r in figures.items()}
                finally:
                    topology.stop()
    return summary


if __name__ == "__main__":
    sys.exit(main())
