"""Item 4, the revocation store: Redis memory per revocation handle and the check's latency
with 1,000,000 revoked handles present, on a dedicated redis-server (no other keys).

Handles are written exactly as `Revocations` writes them (`SET key value EX ttl`, the same key
names and values), loaded with pipelines of 10,000 commands. Memory per handle is reported
two ways: `MEMORY USAGE` of sample keys (the key's own allocations) and the `used_memory`
delta divided by the count (which also counts the keyspace and expiry hash tables).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec
import redis
import uvloop

from broker.agent_token import AgentClaims
from broker.revocation import Revocations, delegation_key, not_before_key
from broker.store import connect
from tests.bench.report import Report, Row, percentiles
from tests.bench.world import EMAIL, World
from tests.harness.services import RedisServer

BATCH = 10_000


def _load(client: redis.Redis, keys: list[str], value: bytes | str, ttl: int) -> None:
    for start in range(0, len(keys), BATCH):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + BATCH]:
            pipe.set(key, value, ex=ttl)
        pipe.execute()


def _used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _per_key(client: redis.Redis, keys: list[str], value: bytes | str, ttl: int) -> float:
    """used_memory growth per key for `keys` loaded into an emptied database."""
    client.flushall()
    base = _used(client)
    _load(client, keys, value, ttl)
    return (_used(client) - base) / len(keys)


def _sample_usage(client: redis.Redis, keys: list[str]) -> float:
    sample = keys[:: max(1, len(keys) // 200)][:200]
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in sample) / len(sample)


def _check_latency(url: str, claims: dict[str, Any], count: int) -> dict[str, float]:
    async def loop() -> dict[str, float]:
        client = connect(url, timeout_s=0.5)
        revocations = Revocations(client, max_token_lifetime_s=8 * 3600)
        handles, iat = handles_of(claims), int(claims["iat"])
        samples = []
        try:
            for i in range(count + 500):
                start = time.perf_counter()
                await revocations.check(handles, issued_at=iat)
                if i >= 500:
                    samples.append(time.perf_counter() - start)
        finally:
            await client.aclose()
        return percentiles(samples)

    return uvloop.run(loop())


def run(world: World, report: Report, handles: int, checks: int) -> dict[str, Any]:
    server = RedisServer(world.root / "redis-revocations").start()
    client = redis.Redis.from_url(server.url)
    try:
        return _measure(server, client, world, report, handles, checks)
    finally:
        client.close()
        server.stop()


def _measure(
    server: RedisServer,
    client: redis.Redis,
    world: World,
    report: Report,
    count: int,
    checks: int,
) -> dict[str, Any]:
    claims = world.agent_claims
    empty = _check_latency(server.url, claims, checks)
    base = _used(client)
    # Delegation ids exactly as the broker makes them; TTL as revoke_delegation sets it.
    dlg_keys = [delegation_key("dlg_" + secrets.token_urlsafe(12)) for _ in range(count)]
    started = time.perf_counter()
    _load(client, dlg_keys, b"1", 8 * 3600 + 60)
    load_s = time.perf_counter() - started
    after = _used(client)
    per_dlg = (after - base) / count
    full = _check_latency(server.url, claims, checks)
    dlg_usage = _sample_usage(client, dlg_keys)
    # Each other layout on an empty database with as many keys, so that hash-table growth
    # is charged the same way to every layout.
    agent_keys = [
        not_before_key("agent", f"agent.a{secrets.token_hex(4)}.{EMAIL}") for _ in range(count)
    ]
    per_agent = _per_key(client, agent_keys, repr(time.time()), 8 * 3600 + 300)
    # What a 30-character key would cost (sds type 5 fits a 32-byte allocation): the same
    # ids under `vouch:rev:<id>` instead of `vouch:rev:dlg:<id>`. Not what the broker writes.
    short_keys = [f"vouch:rev:{k.rsplit(':', 1)[1]}" for k in dlg_keys]
    per_short = _per_key(client, short_keys, b"1", 8 * 3600 + 60)
    out = {
        "handles": count,
        "load_seconds": load_s,
        "used_memory_base": base,
        "used_memory_after": after,
        "bytes_per_delegation_handle_info_delta": per_dlg,
        "bytes_per_delegation_handle_memory_usage": dlg_usage,
        "bytes_per_agent_handle_info_delta": per_agent,
        "bytes_per_handle_30_char_key_info_delta": per_short,
        "check_empty": empty,
        "check_with_handles": full,
        "dbsize_at_end": client.dbsize(),
        "redis_version": client.info("server")["redis_version"],
        "delegation_key_example": dlg_keys[0],
        "agent_key_example": agent_keys[0],
        "short_key_example": short_keys[0],
    }
    label = f"{count:,}"
    report.add(
        Row(
            "revocation",
            f"bytes per delegation handle, used_memory delta / {label}",
            per_dlg,
            "B",
            note=f"key {len(dlg_keys[0])} chars",
        )
    )
    report.add(
        Row(
            "revocation",
            "bytes per delegation handle, MEMORY USAGE (sample)",
            out["bytes_per_delegation_handle_memory_usage"],
            "B",
        )
    )
    report.add(
        Row(
            "revocation",
            f"bytes per agent not-before handle, used_memory delta / {label}",
            per_agent,
            "B",
            note=f"key {len(agent_keys[0])} chars, float value",
        )
    )
    report.add(
        Row(
            "revocation",
            f"bytes per handle if the key had 30 chars (not used), / {label}",
            per_short,
            "B",
            note=f"{short_keys[0][:14]}...",
        )
    )
    report.add(
        Row(
            "revocation",
            f"check p99 with {label} handles present (p50 {full['p50_ms']:.3f})",
            full["p99_ms"],
            "ms",
        )
    )
    report.add(
        Row(
            "revocation",
            f"check p99 on an empty Redis (p50 {empty['p50_ms']:.3f})",
            empty["p99_ms"],
            "ms",
        )
    )
    return out


def handles_of(claims: dict[str, Any]) -> list[str]:
    """The revocation handles of a decoded agent token, as the broker computes them."""
    return msgspec.convert(claims, AgentClaims).handles()
