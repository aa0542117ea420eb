"""Prometheus metrics, one registry per app (no process globals, so tests stay independent).

Several worker processes (`vouch-broker serve --workers N`) share one set of figures:
`serve` points `PROMETHEUS_MULTIPROC_DIR` at a directory of its own before it starts them,
prometheus-client then keeps each worker's values in a file there, and whichever worker
answers `/metrics` adds up every worker's files. So each scrape shows the totals, and
counters never go backwards when the next scrape reaches another worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
STS_OUTCOMES = ("ok", "retryable", "rejected", "unreachable")


def shared_dir() -> Path | None:
    """Where the workers of this server keep their figures, when there are several."""
    value = os.environ.get(SHARED_DIR_ENV)
    return Path(value) if value else None


def clear_shared_dir(directory: Path) -> None:
    """Forget the figures of an earlier run (prometheus-client's files, nothing else)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Read once: prometheus-client chose per-process or shared values at import.
        self.shared = shared_dir()
        self.requests = Counter(
            "vouch_http_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.problems = Counter(
            "vouch_problems_total",
            "Problem responses by type slug",
            ["slug"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vouch_http_request_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.sts_calls = Counter(
            "vouch_sts_calls_total",
            "AssumeRoleWithWebIdentity calls by outcome",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in STS_OUTCOMES:  # shown as 0 before the first call, not missing
            self.sts_calls.labels(outcome)

        # Every worker computes these from Redis: the latest value written is the answer.
        self.aws_cut_pending = Gauge(
            "vouch_aws_cut_pending",
            "Revocations recorded but not yet written to the agents role in AWS",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.aws_cut_oldest_pending = Gauge(
            "vouch_aws_cut_oldest_pending_seconds",
            "Age of the oldest revocation not yet written to AWS (0: none pending)",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.aws_cut_coarse = Gauge(
            "vouch_aws_cut_coarse_before_seconds",
            "When revocations overflowed the role's policy budget: the Unix time before which"
            " every session is denied (0: every revocation is written exactly)",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.aws_cut_writes = Counter(
            "vouch_aws_cut_writes_total",
            "Attempts to bring the agents role's revocation policy up to date, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.spend_records = Counter(
            "vouch_spend_records_total",
            "Invocation log records the spend follower read, by outcome (counted, duplicate,"
            " no-budget, not-ours, unpriced, invalid)",
            ["outcome"],
            registry=self.registry,
        )
        self.budget_revocations = Counter(
            "vouch_budget_revocations_total",
            "Delegations the broker revoked because their spend reached their budget",
            registry=self.registry,
        )
        self.spend_follower_lag = Gauge(
            "vouch_spend_follower_lag_seconds",
            "Seconds since the spend follower last read the invocation log to its end",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def render(self) -> bytes:
        """The text exposition: this process's figures, or every worker's added up."""
        if self.shared is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.shared))  # type: ignore[no-untyped-call]
        return generate_latest(registry)
