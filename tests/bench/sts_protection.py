"""Item 5, STS protection: 100 agents share one delegation for one simulated hour.

The broker's real `Exchange` (real token verification, real revocation check against Redis,
real org policy and session-policy compiler, real credential cache and single flight) runs
with an injected clock (the exchange's and the AWS provider's) that the simulation advances;
only STS is a counting stand-in that answers after a real 20 ms (so concurrent misses overlap
and single flight is exercised) with credentials that expire `DurationSeconds` after the
simulated now. Every simulated `interval` seconds all 100 agents call at once
(asyncio.gather), the worst case for a thundering herd at each expiry. At the end the
delegation is revoked and the next call must be refused although its credentials are cached.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import uvloop

from broker.audit import Audit
from broker.authorize import Authorizer
from broker.credential_cache import CachedProvider
from broker.errors import TokenRevoked
from broker.exchange import Exchange
from broker.exchange_audit import ExchangeAudit
from broker.providers.aws_sts import AwsStsProvider
from broker.revocation import Revocations, delegation_key
from broker.services import load_policy
from broker.settings import load_settings
from broker.store import connect
from broker.sts import AwsCredentials
from tests.bench.report import Report, Row
from tests.bench.world import World

AGENTS = 100
HOUR = 3600


class SimClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class CountingSts:
    """Stands in for `broker.sts.Sts`: counts calls, answers after a real 20 ms."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.calls = 0

    async def assume(
        self, *, role_arn: str, session_name: str, token: str, policy: str, duration_s: int
    ) -> AwsCredentials:
        self.calls += 1
        await asyncio.sleep(0.02)
        expires = datetime.fromtimestamp(self.clock() + duration_s, tz=UTC)
        return AwsCredentials(f"ASIASIM{self.calls:09d}", "secret", "session", expires)


async def _simulate(world: World, duration_s: int | None, interval_s: int) -> dict[str, Any]:
    settings = load_settings(
        env={}, issuer=world.issuer, policy_file=str(world.policy), signing_keys=str(world.keys_dir)
    )
    catalog, org = load_policy(settings)
    # All 100 agents are in flight at once in this one process: more than the broker's
    # default pool of 64 Redis connections (which refuses, not waits, when exhausted).
    redis = connect(world.redis_url, timeout_s=1.0, max_connections=AGENTS + 8)
    clock = SimClock(float(world.agent_claims["iat"]))
    sts = CountingSts(clock)
    provider = AwsStsProvider(
        sts=sts,  # type: ignore[arg-type]
        keys=world.key_ring(),
        issuer=world.issuer,
        catalog=catalog,
        role_arn=org.aws.role_arn,
        region=org.aws.region,
        account_id=org.aws.account_id,
        sts_audience=org.aws.sts_audience,
        assertion_ttl_s=300,
        clock=clock,
    )
    exchange = Exchange(
        keys=world.key_ring(),
        issuer=world.issuer,
        leeway_s=30,
        revocations=Revocations(redis, max_token_lifetime_s=8 * HOUR),
        authorizer=Authorizer(catalog, org, min_duration_s=provider.min_duration_s),
        provider=CachedProvider(provider),
        audit=ExchangeAudit(Audit(redis, max_len=100_000), provider.name, interval_s=60),
        clock=clock,
    )
    token, start = world.agent_token, clock.now
    exchanges, keys_seen = 0, set[str]()
    try:
        while clock.now < start + HOUR:
            answers = await asyncio.gather(
                *(exchange.exchange(token, duration_s=duration_s) for _ in range(AGENTS))
            )
            exchanges += len(answers)
            keys_seen.update(a.access_key_id for a in answers)
            clock.now += interval_s
        cached = len(exchange.provider.entries)
        await exchange.revocations.revoke_delegation(
            world.agent_claims["dlg"], expires_at=int(world.agent_claims["exp"]), now=clock.now
        )
        try:
            await exchange.exchange(token, duration_s=duration_s)
            refused = False
        except TokenRevoked:
            refused = True
        await redis.delete(delegation_key(world.agent_claims["dlg"]))
    finally:
        await redis.aclose()
    lifetime = max(900, duration_s or 900)
    window = lifetime - exchange.provider.margin_s
    return {
        "agents": AGENTS,
        "interval_s": interval_s,
        "duration_s": lifetime,
        "exchanges": exchanges,
        "sts_calls": sts.calls,
        "distinct_credentials_served": len(keys_seen),
        "expected_calls": math.ceil(HOUR / window),
        "refresh_window_s": window,
        "cache_entries": cached,
        "revoked_while_cached_refused": refused,
    }


def run(world: World, report: Report, interval_s: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for duration in (None, 3600):
        result = uvloop.run(_simulate(world, duration, interval_s))
        out[f"duration_{result['duration_s']}"] = result
        report.add(
            Row(
                "sts",
                f"STS calls, {AGENTS} agents x 1 h, {result['exchanges']:,} exchanges, "
                f"{result['duration_s']} s creds",
                result["sts_calls"],
                "calls",
                result["expected_calls"],
                f"one per {result['refresh_window_s']:.0f} s refresh window",
                "revoked while cached: refused"
                if result["revoked_while_cached_refused"]
                else "revoked while cached: SERVED (bug)",
            )
        )
    return out
