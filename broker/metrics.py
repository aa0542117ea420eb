"""Prometheus metrics, one registry per app (no process globals, so tests stay independent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

        self.aws_cut_pending = Gauge(
            "vouch_aws_cut_pending",
            "Revocations recorded but not yet written to the agents role in AWS",
            registry=self.registry,
        )
        self.aws_cut_oldest_pending = Gauge(
            "vouch_aws_cut_oldest_pending_seconds",
            "Age of the oldest revocation not yet written to AWS (0: none pending)",
            registry=self.registry,
        )
        self.aws_cut_coarse = Gauge(
            "vouch_aws_cut_coarse_before_seconds",
            "When revocations overflowed the role's policy budget: the Unix time before which"
            " every session is denied (0: every revocation is written exactly)",
            registry=self.registry,
        )
        self.aws_cut_writes = Counter(
            "vouch_aws_cut_writes_total",
            "Attempts to bring the agents role's revocation policy up to date, by outcome",
            ["outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
