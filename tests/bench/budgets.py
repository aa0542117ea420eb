"""The issue's budgets, judged from one run's data, and the exchange's combined limits.

The cache-hit exchange of an unbound token does two things per request that item 6 measures
alone: one HTTP request/response (the /healthz rate) and one Redis round trip (the broker's
`Revocations.check`, 32 in flight); the token's ES256 verification is cached after its first
exchange (broker/verified_tokens.py), so it is no longer part of a hit. A bound token's hit
adds what is not cached: its DPoP proof's verification (`ProofVerifier.verify`, one ES256
signature and the checks) and the proof's jti in the same round trip (SET NX). No process
can do these faster than the sum of their costs allows, so the limits are
    unbound: 1 / (1 / healthz_rps + 1 / (workers * redis_per_s))
    bound:   1 / (1 / healthz_rps + 1 / (workers * proof_verify_per_s)
                  + 1 / (workers * redis_with_jti_per_s)),
with /healthz measured with the same workers and load generator. Each single limit is shown
too: the exchange is necessarily a small fraction of /healthz alone.
"""

from __future__ import annotations

from typing import Any

from tests.bench.report import Budget, Row


def combined_limit(data: dict[str, Any], setup: str, *, bound: bool = False) -> float | None:
    try:
        result = data["hit"][setup]
        workers = int(result["setup"]["workers"])
        http = float(result["healthz"]["rps"])
        loop = data["limits"]["revocation_loop"]
        if not bound:
            return 1 / (1 / http + 1 / (workers * float(loop["concurrent_per_s"])))
        proof = float(data["limits"]["dpop_verify_per_s"])
        redis = float(loop["bound_concurrent_per_s"])
    except (KeyError, TypeError, ValueError):
        return None
    return 1 / (1 / http + 1 / (workers * proof) + 1 / (workers * redis))


def limit_rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for setup, result in data.get("hit", {}).items():
        limit = combined_limit(data, setup)
        if limit is None:
            continue
        workers = int(result["setup"]["workers"])
        hit = result["hit"]["rps"]
        redis = data["limits"]["revocation_loop"]["concurrent_per_s"] * workers
        rows += [
            Row(
                "ratio",
                f"{setup}: exchange vs combined limit",
                hit,
                "req/s",
                limit,
                "HTTP + Redis, summed costs (token verify cached)",
            ),
            Row(
                "ratio",
                f"{setup}: exchange vs Redis round trip alone",
                hit,
                "req/s",
                redis,
                f"Revocations.check x {workers} process(es)",
            ),
        ]
        bound = result.get("bound")
        bound_limit = combined_limit(data, setup, bound=True)
        if bound and bound_limit:
            proof = data["limits"]["dpop_verify_per_s"] * workers
            rows += [
                Row(
                    "ratio",
                    f"{setup}: bound (DPoP) exchange vs combined limit",
                    bound["rps"],
                    "req/s",
                    bound_limit,
                    "HTTP + proof verify + Redis with jti, summed costs",
                ),
                Row(
                    "ratio",
                    f"{setup}: bound exchange vs proof verify alone",
                    bound["rps"],
                    "req/s",
                    proof,
                    f"ProofVerifier x {workers} process(es)",
                ),
            ]
    return rows


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def evaluate(data: dict[str, Any]) -> list[Budget]:
    budgets: list[Budget] = []

    def add(name: str, target: str, value: Any, ok: Any, text: str) -> None:
        budgets.append(
            Budget(
                name,
                target,
                text if value is not None else "not measured",
                bool(ok) if value is not None else None,
            )
        )

    rps = _get(data, "hit", "2w", "hit", "rps")
    add(
        "cache-hit exchange, 2 workers",
        ">= 4,000 req/s",
        rps,
        rps is not None and rps >= 4000,
        f"{rps or 0:,.0f} req/s",
    )
    p99 = _get(data, "hit", "2w", "hit@2000", "p99_ms")
    done = _get(data, "hit", "2w", "hit@2000", "rps")
    other = _get(data, "hit", "2w", "hit@2000", "other_load_cores") or 0
    add(
        "cache-hit p99 at 2,000 req/s (half), 2 workers",
        "<= 10 ms",
        p99,
        p99 is not None and p99 <= 10,
        f"{p99 or 0:.2f} ms at {done or 0:,.0f} req/s, other load {other:.2f} cores",
    )
    half = _get(data, "hit", "2w", "half_load")
    half_p99 = _get(data, "hit", "2w", half, "p99_ms") if half else None
    half_rps = _get(data, "hit", "2w", half, "rps") if half else None
    half_other = (_get(data, "hit", "2w", half, "other_load_cores") or 0) if half else 0
    add(
        "cache-hit p99 at half the saturation rate, 2 workers",
        "<= 10 ms",
        half_p99,
        half_p99 is not None and half_p99 <= 10,
        f"{half_p99 or 0:.2f} ms at {half_rps or 0:,.0f} req/s, other load {half_other:.2f} cores",
    )
    limit = combined_limit(data, "2w")
    ratio = rps / limit if rps and limit else None
    add(
        "cache-hit vs its limit (item 6), 2 workers",
        ">= 80%",
        ratio,
        ratio is not None and ratio >= 0.8,
        f"{ratio or 0:.0%} of {limit or 0:,.0f} req/s",
    )
    bound = _get(data, "hit", "2w", "bound", "rps")
    bound_limit = combined_limit(data, "2w", bound=True)
    bound_ratio = bound / bound_limit if bound and bound_limit else None
    add(
        "bound (DPoP) cache-hit vs its limit, 2 workers",
        ">= 50%",
        bound_ratio,
        bound_ratio is not None and bound_ratio >= 0.5,
        f"{bound_ratio or 0:.0%} of {bound_limit or 0:,.0f} req/s ({bound or 0:,.0f} req/s)",
    )
    miss = _get(data, "miss", "overhead_p50_ms")
    add(
        "cache-miss overhead p50, STS excluded",
        "<= 3 ms",
        miss,
        miss is not None and miss <= 3,
        f"{miss or 0:.2f} ms",
    )
    check = _get(data, "revocation", "check_with_handles", "p99_ms")
    handles = _get(data, "revocation", "handles") or 0
    add(
        f"revocation check p99, {handles:,} handles",
        "<= 0.3 ms",
        check,
        check is not None and check <= 0.3,
        f"{check or 0:.3f} ms",
    )
    per = _get(data, "revocation", "bytes_per_delegation_handle_info_delta")
    agent = _get(data, "revocation", "bytes_per_agent_handle_info_delta")
    add(
        "Redis memory per delegation handle",
        "<= 120 B",
        per,
        per is not None and per <= 120,
        f"{per or 0:.0f} B (agent not-before: {agent or 0:.0f} B)",
    )
    rss = _get(data, "rss")
    if rss:
        slope = rss["slope_mb_per_100k"]
        ok = rss["projected_mb_at_1m"] <= 150 and slope <= 1.0
        add(
            "worker RSS after 1,000,000 exchanges, no growth",
            "<= 150 MB",
            rss,
            ok,
            f"{rss['end_mb']:.0f} MB at {rss['exchanges']:,}; "
            f"{rss['projected_mb_at_1m']:.0f} at 1M ({slope:+.2f} MB/100k)",
        )
    else:
        add("worker RSS after 1,000,000 exchanges, no growth", "<= 150 MB", None, False, "")
    sts = _get(data, "sts")
    if sts:
        ok = all(
            r["sts_calls"] == r["expected_calls"] and r["revoked_while_cached_refused"]
            for r in sts.values()
        )
        text = ", ".join(f"{r['sts_calls']} for {r['exchanges']:,}" for r in sts.values())
        add("STS calls: one per credential, not per call", "1 per refresh window", sts, ok, text)
    else:
        add("STS calls: one per credential, not per call", "1 per refresh window", None, False, "")
    ours = _get(data, "limits", "broker_verify_per_s")
    jose = _get(data, "peer", "in_process", "verify", "per_s")
    ahead = ours / jose if ours and jose else None
    add(
        "verification per core vs jose (in process)",
        "> 100%",
        ahead,
        ahead is not None and ahead > 1,
        f"{ahead or 0:.0%} ({ours or 0:,.0f} vs {jose or 0:,.0f}/s)",
    )
    hit1 = _get(data, "hit", "1w-pinned", "hit", "rps")
    http = _get(data, "peer", "http_verify", "rps")
    over_http = hit1 / http if hit1 and http else None
    add(
        "exchange per core vs jose HTTP /verify",
        ">= 100%",
        over_http,
        over_http is not None and over_http >= 1,
        f"{over_http or 0:.0%} ({hit1 or 0:,.0f} vs {http or 0:,.0f} req/s)",
    )
    return budgets
