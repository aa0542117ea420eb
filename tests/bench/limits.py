"""Item 6, the limits: what one process can do at most for each piece of an exchange.

- ES256: raw `cryptography` verifications per second (the floor under any JWT library), the
  broker's own `tokens.verify`, and PyJWT's `jwt.decode` on the same agent token;
- DPoP: the broker's `ProofVerifier.verify` on a fresh proof of a bound token (what a bound
  cache hit verifies instead of the token: one ES256 signature plus the proof's checks);
- Redis: one round trip for the four revocation handles, by redis-benchmark (C client) and by
  the broker's own `Revocations.check` (its pipelined connection on uvloop, as served:
  broker/redis_pipe.py);
- HTTP: /healthz under wrk (measured with the brokers, in `exchange_hit`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import shutil
import subprocess
import time
from typing import Any

import jwt
import msgspec
import uvloop
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from broker.agent_token import AgentClaims, expectation
from broker.dpop import ProofVerifier
from broker.keys import ALGORITHM
from broker.revocation import Revocations
from broker.store import connect
from broker.tokens import AGENT_TYP, mint, verify
from tests.bench.report import Report, Row, percentiles, rate
from tests.bench.world import World


def es256(world: World, report: Report, seconds: float) -> dict[str, float]:
    """Verifications (and signatures) per second in this one process, on one core."""
    ring, token = world.key_ring(), world.agent_token
    signing_input, _, sig_b64 = token.rpartition(".")
    raw = jwt.utils.base64url_decode(sig_b64)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    kid = jwt.get_unverified_header(token)["kid"]
    public_key = ring.public_keys[kid]
    data, algo = signing_input.encode(), ec.ECDSA(hashes.SHA256())
    expect = expectation(world.issuer, 30)
    now = time.time()
    claims = world.agent_claims
    out = {
        "raw_verify_per_s": rate(lambda: public_key.verify(der, data, algo), seconds),
        "broker_verify_per_s": rate(lambda: verify(token, expect, keys=ring, now=now), seconds),
        "pyjwt_decode_per_s": rate(
            lambda: jwt.decode(
                token,
                public_key,
                algorithms=[ALGORITHM],
                audience=world.issuer,
                issuer=world.issuer,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            ),
            seconds,
        ),
        "broker_mint_per_s": rate(lambda: mint(claims, typ=AGENT_TYP, keys=ring), seconds),
    }
    limit = out["raw_verify_per_s"]
    report.add(Row("limits", "ES256 verify, cryptography raw (1 process)", limit, "op/s"))
    report.add(
        Row(
            "limits",
            "ES256 verify, broker tokens.verify (parse+claims)",
            out["broker_verify_per_s"],
            "op/s",
            limit,
            "raw verify",
        )
    )
    report.add(
        Row(
            "limits",
            "ES256 verify, PyJWT jwt.decode",
            out["pyjwt_decode_per_s"],
            "op/s",
            limit,
            "raw verify",
        )
    )
    report.add(
        Row(
            "limits",
            "ES256 sign, broker tokens.mint (agent token)",
            out["broker_mint_per_s"],
            "op/s",
        )
    )
    if world.agent_key is not None:
        key, bound = world.agent_key, world.bound_token
        htu = world.issuer + "/v1/credentials/aws"
        proof = key.proof("POST", htu, bound)
        jkt = key.thumbprint
        verifier = ProofVerifier(max_age_s=60, leeway_s=30)
        out["dpop_verify_per_s"] = rate(
            lambda: verifier.verify(proof, jkt=jkt, token=bound, method="POST", htu=htu, now=now),
            seconds,
        )
        report.add(
            Row(
                "limits",
                "DPoP proof verify, broker ProofVerifier (ES256 + checks)",
                out["dpop_verify_per_s"],
                "op/s",
                limit,
                "raw verify",
            )
        )
    return out


def redis_benchmark(world: World, report: Report, quick: bool) -> dict[str, Any]:
    """redis-benchmark (C client) running the broker's MGET of four handles."""
    binary = shutil.which("redis-benchmark")
    if binary is None or world.redis is None:
        report.notes.append("redis-benchmark not found (Debian package redis-tools): skipped")
        return {}
    keys = handles_of(world.agent_claims)
    out: dict[str, Any] = {}
    for clients in (1, 32):
        n = 20_000 if quick else 100_000
        cmd = [binary, "-p", str(world.redis.port), "-n", str(n), "-c", str(clients), "--csv"]
        answer = subprocess.run([*cmd, "MGET", *keys], capture_output=True, text=True, check=True)
        row = next(csv.DictReader(io.StringIO(answer.stdout)))
        out[f"c{clients}"] = {k: float(v) for k, v in row.items() if k != "test"}
    seq = out["c1"]
    report.add(
        Row(
            "limits",
            f"Redis MGET 4 handles, redis-benchmark c=1 p50 (p99 {seq['p99_latency_ms']:.3f})",
            seq["p50_latency_ms"],
            "ms",
        )
    )
    report.add(
        Row("limits", "Redis MGET 4 handles, redis-benchmark c=32", out["c32"]["rps"], "op/s")
    )
    return out


def revocation_loop(world: World, report: Report, count: int) -> dict[str, Any]:
    """The broker's own check, sequential (latency) and 32 at a time (throughput, CPU)."""
    return uvloop.run(_revocation_loop(world, report, count))


async def _revocation_loop(world: World, report: Report, count: int) -> dict[str, Any]:
    redis = connect(world.redis_url, timeout_s=0.5)
    revocations = Revocations(redis, max_token_lifetime_s=8 * 3600)
    claims = world.agent_claims
    handles, iat = handles_of(claims), claims["iat"]
    try:
        for _ in range(200):
            await revocations.check(handles, issued_at=iat)
        bound_per_s = await _bound_loop(revocations, handles, iat, count)
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await revocations.check(handles, issued_at=iat)
            samples.append(time.perf_counter() - start)
        latency = percentiles(samples)

        async def worker(n: int) -> None:
            for _ in range(n):
                await revocations.check(handles, issued_at=iat)

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(count // 32) for _ in range(32)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        done = 32 * (count // 32)
    finally:
        await redis.aclose()
    out = {**latency, "concurrent_per_s": done / wall, "cpu_us_per_check": cpu / done * 1e6}
    out["bound_concurrent_per_s"] = bound_per_s
    report.add(
        Row(
            "limits",
            f"Redis round trip, Revocations.check p50 (p99 {latency['p99_ms']:.3f})",
            latency["p50_ms"],
            "ms",
        )
    )
    report.add(
        Row(
            "limits",
            f"Redis round trip, Revocations.check x32 ({out['cpu_us_per_check']:.0f} us CPU each)",
            out["concurrent_per_s"],
            "op/s",
        )
    )
    report.add(
        Row(
            "limits",
            "Redis round trip with a proof jti (SET NX), Revocations.check x32",
            bound_per_s,
            "op/s",
        )
    )
    return out


async def _bound_loop(revocations: Revocations, handles: list[str], iat: int, count: int) -> float:
    """Checks per second, 32 in flight, each also recording a fresh proof jti (SET NX)."""
    run = secrets.token_hex(4)

    async def worker(w: int, n: int) -> None:
        for i in range(n):
            key = f"vouch:dpop:bench{run}:{w}.{i}"
            await revocations.check(handles, issued_at=iat, proof=(key, 60))

    start = time.perf_counter()
    await asyncio.gather(*(worker(w, count // 32) for w in range(32)))
    return 32 * (count // 32) / (time.perf_counter() - start)


def handles_of(claims: dict[str, Any]) -> list[str]:
    """The revocation handles of a decoded agent token, as the broker computes them."""
    return msgspec.convert(claims, AgentClaims).handles()
