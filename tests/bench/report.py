"""Figures, budgets and the printed table; the same data goes to the JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure: `value` in `unit`, optionally as a ratio of a named `limit` (same unit)."""

    bench: str
    figure: str
    value: float
    unit: str
    limit: float | None = None
    limit_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.limit is None or not self.limit:
            return None
        return self.value / self.limit


@dataclass
class Budget:
    name: str
    target: str
    measured: str
    passed: bool | None  # None: not measured in this run


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    budgets: list[Budget] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.bench:<11} {row.figure:<54} {_fmt(row.value)} {row.unit}", flush=True)
        return row

    def table(self) -> str:
        lines = [
            f"{'benchmark':<11} {'figure':<54} {'value':>11} {'unit':<8} "
            f"{'limit':>11} {'ratio':>7}  limit is"
        ]
        lines.append("-" * len(lines[0]))
        for r in self.rows:
            ratio = f"{r.ratio:7.1%}" if r.ratio is not None else " " * 7
            limit = _fmt(r.limit) if r.limit is not None else ""
            lines.append(
                f"{r.bench:<11} {r.figure:<54} {_fmt(r.value):>11} {r.unit:<8} "
                f"{limit:>11} {ratio}  {r.limit_name}" + (f" [{r.note}]" if r.note else "")
            )
        if self.budgets:
            lines += ["", f"{'budget':<52} {'target':<22} {'measured':<34} result"]
            for b in self.budgets:
                verdict = {True: "PASS", False: "FAIL", None: "not run"}[b.passed]
                lines.append(f"{b.name:<52} {b.target:<22} {b.measured:<34} {verdict}")
        if self.notes:
            lines += ["", *[f"note: {n}" for n in self.notes]]
        return "\n".join(lines)

    def markdown(self) -> str:
        """The figures and budgets as Markdown tables (for docs/performance.md)."""
        lines = [
            "| benchmark | figure | value | unit | limit | ratio | limit is / note |",
            "|---|---|--:|---|--:|--:|---|",
        ]
        for r in self.rows:
            ratio = f"{r.ratio:.1%}" if r.ratio is not None else ""
            limit = _fmt(r.limit) if r.limit is not None else ""
            note = "; ".join(x for x in (r.limit_name, r.note) if x)
            lines.append(
                f"| {r.bench} | {r.figure} | {_fmt(r.value)} | {r.unit} | {limit} | {ratio} "
                f"| {note} |"
            )
        lines += ["", "| budget | target | measured | result |", "|---|---|---|---|"]
        for b in self.budgets:
            verdict = {True: "PASS", False: "**FAIL**", None: "not run"}[b.passed]
            lines.append(f"| {b.name} | {b.target} | {b.measured} | {verdict} |")
        return "\n".join(lines) + "\n"

    def write(self, path: Path, options: dict[str, Any]) -> None:
        doc = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(),
            "options": options,
            "rows": [{**asdict(r), "ratio": r.ratio} for r in self.rows],
            "budgets": [asdict(b) for b in self.budgets],
            "data": self.data,
            "notes": self.notes,
        }
        path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1000:
        return f"{value:.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "git": _git_head(),
        "uncommitted_broker_changes": _dirty(),
    }


def _dirty() -> list[str]:
    """Files of the broker with uncommitted changes in this checkout (they were measured)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "broker", "policies"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line[3:] for line in out.stdout.splitlines()]


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of durations given in seconds."""
    ordered = sorted(samples_s)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] * 1000

    return {
        "n": n,
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def timed(fn: Callable[[], object], count: int) -> list[float]:
    """`count` wall-clock durations of fn() in seconds."""
    out = []
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        fn()
        out.append(clock() - start)
    return out


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of fn() in a tight loop for about `seconds`."""
    clock, done, start = time.perf_counter, 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        done += 100
        if clock() >= deadline:
            return done / (clock() - start)
