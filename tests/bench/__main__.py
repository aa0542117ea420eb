"""`python -m tests.bench` (`make bench`): the broker's benchmarks, a table and a JSON file.

    uv run python -m tests.bench                      # everything, ~10 minutes on 2 cores
    uv run python -m tests.bench --quick              # shorter runs, ~3 minutes
    uv run python -m tests.bench --only hit,miss      # some benchmarks
    uv run python -m tests.bench --baseline <git ref> # also the broker at that ref: ratios
    uv run --with granian python -m tests.bench --only servers   # uvicorn vs granian
    uv run python -m tests.bench --rss-exchanges 1000000          # the RSS budget, measured

Needs redis-server and wrk (Debian: apt-get install redis-server wrk); the peer needs node
and npm (its packages install from tests/bench/peer/package-lock.json on first use).

What each figure means, and the latest figures, are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from tests.bench import (
    ceremonies,
    exchange_hit,
    exchange_miss,
    limits,
    memory,
    peer,
    revocation_store,
    sts_protection,
)
from tests.bench.budgets import evaluate, limit_rows
from tests.bench.report import Report, Row
from tests.bench.world import ROOT, World, write_lines
from tests.bench.wrk import WrkMissing, require_wrk

NAMES = (
    "limits",
    "hit",
    "miss",
    "ceremony",
    "revocation",
    "sts",
    "rss",
    "peer",
    "servers",
)
BUDGET_RATE = 2000.0  # "p99 <= 10 ms at half that rate": half of the 4,000 req/s budget


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke check)")
    parser.add_argument("--only", default="", help=f"comma list of: {', '.join(NAMES)}")
    parser.add_argument("--skip", default="", help="comma list of benchmarks to leave out")
    parser.add_argument("--out", default="bench-results.json", help="JSON results file")
    parser.add_argument("--seconds", type=float, help="seconds per load run (default 10, quick 3)")
    parser.add_argument(
        "--rss-exchanges",
        type=int,
        help="exchanges in the RSS run (default 200,000; quick 60,000; 1000000 for the budget)",
    )
    parser.add_argument(
        "--handles", type=int, help="revoked handles loaded (default 1,000,000; quick 200,000)"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run the cache-hit and cache-miss exchange on the broker at this git ref",
    )
    parser.add_argument("--markdown", help="also write the tables as Markdown to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def selected(args: argparse.Namespace) -> list[str]:
    only = [n for n in args.only.split(",") if n] or list(NAMES)
    skip = {n for n in args.skip.split(",") if n}
    unknown = sorted((set(only) | skip) - set(NAMES))
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    if "servers" in only and importlib.util.find_spec("granian") is None:
        if args.only:
            sys.exit("servers needs granian: uv run --with granian python -m tests.bench ...")
        only.remove("servers")
    return [n for n in only if n not in skip]


def report_head() -> str:
    answer = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.stdout.strip()


def baseline_tree(ref: str, into: Path) -> Path:
    """The broker and policies packages at `ref` (git archive: reads the repository only).

    A ref whose lock has no hiredis runs without it, as it was released: redis-py would
    otherwise pick up the parser installed for HEAD (10 us less per Redis command).
    """
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", ref, "broker", "policies"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    lock = subprocess.run(
        ["git", "show", f"{ref}:uv.lock"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if 'name = "hiredis"' not in lock.stdout:
        (into / "hiredis.py").write_text('raise ImportError("hiredis is not locked at this ref")\n')
    return into


class Run:
    """One benchmark run: options, the world, the report."""

    def __init__(self, args: argparse.Namespace, world: World, report: Report) -> None:
        self.args, self.world, self.report = args, world, report
        self.quick = args.quick
        self.seconds = args.seconds or (3.0 if args.quick else 10.0)
        self.data = report.data

    def limits(self) -> None:
        per = 1.0 if self.quick else 3.0
        self.data["limits"] = {
            **limits.es256(self.world, self.report, per),
            "redis_benchmark": limits.redis_benchmark(self.world, self.report, self.quick),
            "revocation_loop": limits.revocation_loop(
                self.world, self.report, 2000 if self.quick else 10_000
            ),
        }

    def hit(self) -> None:
        tokens = write_lines(self.world.root / "hit-token.txt", [self.world.agent_token])
        results = {}
        for setup in exchange_hit.SETUPS:
            rates = (BUDGET_RATE,) if setup.workers == 2 else ()
            print(f"  [{setup.name}]", flush=True)
            result = exchange_hit.run_setup(
                self.world, setup, tokens, self.seconds, overload=128 if setup.name == "1w" else 0
            )
            if rates:
                extra = exchange_hit.run_setup(
                    self.world, setup, tokens, self.seconds, fixed_rates=rates, healthz=False
                )
                result[f"hit@{BUDGET_RATE:.0f}"] = extra[f"hit@{BUDGET_RATE:.0f}"]
            exchange_hit.report_setup(self.report, result, setup.name)
            print(f"  [{setup.name} bound]", flush=True)
            bound = exchange_hit.run_bound(
                self.world, setup, self.seconds, expected_rps=result["hit"]["rps"]
            )
            exchange_hit.report_bound(self.report, bound, setup.name)
            result["bound"] = bound["hit"]
            results[setup.name] = result
        self.data["hit"] = results
        if self.args.baseline:
            self._baseline(tokens)

    def _baseline(self, tokens: Path) -> None:
        # Both sides from git (committed code only), so nobody's uncommitted edits count.
        tree = baseline_tree(self.args.baseline, self.world.root / "baseline")
        head = baseline_tree("HEAD", self.world.root / "head")
        out: dict[str, Any] = {"ref": self.args.baseline, "head": report_head()}
        for setup in exchange_hit.SETUPS:
            if setup.name == "1w":
                continue
            old_setup = exchange_hit.Setup(
                setup.name, setup.workers, setup.broker_cpus, setup.wrk_cpus, tree=tree
            )
            new_setup = exchange_hit.Setup(
                setup.name, setup.workers, setup.broker_cpus, setup.wrk_cpus, tree=head
            )
            runs, halves = {}, {}
            for label, which in (
                ("after", new_setup),
                ("before", old_setup),
                ("after2", new_setup),
            ):
                print(f"  [{setup.name} {label}]", flush=True)
                result = exchange_hit.run_setup(
                    self.world, which, tokens, self.seconds, healthz=False
                )
                runs[label], halves[label] = result["hit"], result[result["half_load"]]
            out[setup.name] = runs
            out[f"{setup.name} half load"] = halves
            after = [runs["after"], runs["after2"]]
            rps = sum(r["rps"] for r in after) / 2
            cpu = sum(r["cpu_us_per_req"] for r in after) / 2
            p99 = sum(r["p99_ms"] for r in after) / 2
            half_p99 = (halves["after"]["p99_ms"] + halves["after2"]["p99_ms"]) / 2
            other = max(r["other_load_cores"] for r in [*runs.values(), *halves.values()])
            before = runs["before"]
            self.report.add(
                Row(
                    "baseline",
                    f"{setup.name}: hit req/s, after vs {self.args.baseline}",
                    rps,
                    "req/s",
                    before["rps"],
                    "before",
                )
            )
            self.report.add(
                Row(
                    "baseline",
                    f"{setup.name}: CPU per hit, after vs before",
                    cpu,
                    "us",
                    before["cpu_us_per_req"],
                    "before",
                )
            )
            self.report.add(
                Row(
                    "baseline",
                    f"{setup.name}: hit p99 at saturation, after vs before",
                    p99,
                    "ms",
                    before["p99_ms"],
                    "before",
                )
            )
            self.report.add(
                Row(
                    "baseline",
                    f"{setup.name}: hit p99 at half its saturation, after vs before",
                    half_p99,
                    "ms",
                    halves["before"]["p99_ms"],
                    "before",
                    f"at {halves['after']['rps']:,.0f} / {halves['before']['rps']:,.0f} req/s;"
                    f" other load at most {other:.2f} cores",
                )
            )
        self.data["baseline"] = out

    def miss(self) -> None:
        self.data["miss"] = exchange_miss.run(self.world, self.report, self.seconds, self.quick)
        if self.args.baseline:
            self._miss_baseline()

    def _miss_baseline(self) -> None:
        """The cache miss at HEAD and at the baseline, interleaved in this run (committed code)."""
        tree = baseline_tree(self.args.baseline, self.world.root / "baseline-miss")
        head = baseline_tree("HEAD", self.world.root / "head-miss")
        runs = {}
        for label, which in (("after", head), ("before", tree), ("after2", head)):
            print(f"  [miss {label}]", flush=True)
            runs[label] = exchange_miss.misses(self.world, self.seconds, which)[0]
        after = [runs["after"], runs["after2"]]
        for key, name, unit in (
            ("p50_ms", "miss p50 (fake STS included), after vs before", "ms"),
            ("cpu_us_per_req", "CPU per miss, after vs before", "us"),
        ):
            value = sum(r[key] for r in after) / 2
            self.report.add(Row("baseline", name, value, unit, runs["before"][key], "before"))
        self.data.setdefault("baseline", {})["miss"] = runs

    def ceremony(self) -> None:
        self.data["ceremony"] = ceremonies.run(self.world, self.report, 20 if self.quick else 100)

    def revocation(self) -> None:
        handles = self.args.handles or (200_000 if self.quick else 1_000_000)
        checks = 2000 if self.quick else 10_000
        self.data["revocation"] = revocation_store.run(self.world, self.report, handles, checks)

    def sts(self) -> None:
        self.data["sts"] = sts_protection.run(self.world, self.report, 30 if self.quick else 10)

    def rss(self) -> None:
        total = self.args.rss_exchanges or (60_000 if self.quick else 200_000)
        self.data["rss"] = memory.run(self.world, self.report, total, 3.0 if self.quick else 5.0)

    def peer(self) -> None:
        limits_data = self.data.get("limits", {})
        pinned = self.data.get("hit", {}).get("1w-pinned", {})
        hit, bound = pinned.get("hit", {}), pinned.get("bound", {})
        context = {
            "limits": limits_data,
            "hit_1w_pinned": hit.get("rps"),
            "bound_1w_pinned": bound.get("rps"),
        }
        self.data["peer"] = peer.run(self.world, self.report, self.seconds, context)

    def servers(self) -> None:
        tokens = write_lines(self.world.root / "hit-token.txt", [self.world.agent_token])
        out = {}
        for server in ("granian", "uvicorn"):
            for setup in exchange_hit.SETUPS:
                if setup.name == "1w":
                    continue
                which = exchange_hit.Setup(
                    f"{setup.name} {server}",
                    setup.workers,
                    setup.broker_cpus,
                    setup.wrk_cpus,
                    server=server,
                )
                print(f"  [{which.name}]", flush=True)
                result = exchange_hit.run_setup(self.world, which, tokens, self.seconds)
                exchange_hit.report_setup(self.report, result, which.name)
                out[which.name] = result
        self.data["servers"] = out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The ceremonies use the software authenticator on purpose; say so once, not per person.
    warnings.filterwarnings("ignore", message=".*SOFTWARE authenticator.*")
    names = selected(args)
    http = {"hit", "miss", "rss", "peer", "servers"} & set(names)
    if http:
        try:
            require_wrk()
        except WrkMissing as exc:
            print(f"tests.bench: {exc}", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="vouch-bench-"))
    report = Report()
    world = World(work / "world")
    started = time.time()
    failed: list[str] = []
    try:
        print(f"vouch benchmarks: {', '.join(names)} (work dir {work})", flush=True)
        world.start()
        with world.broker() as broker:
            world.first_delegation(broker)
        run = Run(args, world, report)
        for name in names:
            print(f"[{name}]", flush=True)
            try:
                getattr(run, name)()
            except (peer.PeerMissing, WrkMissing) as exc:
                report.notes.append(f"{name}: skipped: {exc}")
            except Exception:
                traceback.print_exc()
                failed.append(name)
                report.notes.append(f"{name}: FAILED (traceback above)")
    finally:
        world.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    report.rows += limit_rows(report.data)
    report.budgets = evaluate(report.data)
    report.notes.append(f"took {time.time() - started:.0f} s")
    print()
    print(report.table())
    out = Path(args.out)
    report.write(out, dict(vars(args)))
    if args.markdown:
        Path(args.markdown).write_text(report.markdown())
    print(f"\nresults: {out.resolve()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
