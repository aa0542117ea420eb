"""Exchange: agent token -> scoped AWS credentials (DESIGN.md section 4).

verify token -> revocation (one round trip) -> attenuate models -> session policy ->
STS assertion (never leaves the broker) -> AssumeRoleWithWebIdentity -> credential document.
Credentials are cached per (delegation, policy, duration) and concurrent misses share one call.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from broker.errors import GrantInvalid, PolicyDenied
from broker.grant import session_name
from broker.keys import KeyRing
from broker.revocation import Revocations, handles_of_agent
from broker.sts import AwsCredentials, Sts
from broker.tokens import AGENT_TYP, STS_TYP, Expectation, mint, verify
from policies import Catalog, OrgPolicy, compile_session_policy
from policies.errors import PoliciesError

MIN_DURATION_S = 900
AGENT_CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti", "dlg", "models", "act")


def agent_expectation(issuer: str, leeway_s: int) -> Expectation:
    return Expectation(
        typ=AGENT_TYP, issuer=issuer, audience=issuer, required=AGENT_CLAIMS, leeway_s=leeway_s
    )


@dataclass
class CredentialCache:
    """LRU of live credentials with single-flight misses; bounded so memory stays flat."""

    max_entries: int = 10_000
    margin_s: float = 300.0
    entries: OrderedDict[tuple[str, ...], AwsCredentials] = field(default_factory=OrderedDict)
    inflight: dict[tuple[str, ...], asyncio.Future[AwsCredentials]] = field(default_factory=dict)

    def get(self, key: tuple[str, ...], now: float) -> AwsCredentials | None:
        creds = self.entries.get(key)
        if creds is None or creds.expiration.timestamp() - now <= self.margin_s:
            return None
        self.entries.move_to_end(key)
        return creds

    def put(self, key: tuple[str, ...], creds: AwsCredentials) -> None:
        self.entries[key] = creds
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def evict_delegation(self, dlg_id: str) -> None:
        for key in [k for k in self.entries if k[0] == dlg_id]:
            del self.entries[key]


@dataclass
class Exchange:
    keys: KeyRing
    issuer: str
    leeway_s: int
    catalog: Catalog
    org: OrgPolicy
    revocations: Revocations
    sts: Sts
    sts_audience: str
    assertion_ttl_s: int
    cache: CredentialCache = field(default_factory=CredentialCache)
    clock: Callable[[], float] = time.time  # injected by simulations of hours of refreshes

    def __post_init__(self) -> None:
        self.expect = agent_expectation(self.issuer, self.leeway_s)
        # The org policy and catalog are fixed for the process's life, so what they answer
        # for a (person, agent, models) or a model set is computed once, not per request.
        self._policy = lru_cache(maxsize=4096)(self._compile)
        self._org_ceiling = lru_cache(maxsize=4096)(self._authorize)

    async def exchange(
        self, token: str, *, models: list[str] | None = None, duration_s: int | None = None
    ) -> AwsCredentials:
        """Raises: TokenInvalid, TokenExpired, TokenRevoked, GrantInvalid, PolicyDenied,
        RateLimited, StoreUnavailable, StsRejected, StsUnavailable."""
        now = self.clock()
        claims = verify(token, self.expect, keys=self.keys, now=now)
        await self.revocations.check(
            handles_of_agent(claims),
            issued_at=claims["iat"],
            rate=(claims["dlg"], claims["rate"]) if claims.get("rate") else None,
        )
        granted = tuple(claims["models"])
        chosen = self._narrow(granted, models)
        limits = self._limits(claims, chosen)
        duration = _clamp(duration_s, limits)
        policy, digest = self._policy(chosen)
        key = (claims["dlg"], digest, str(duration))
        cached = self.cache.get(key, now)
        if cached is not None:
            return cached
        return await self._single_flight(key, lambda: self._assume(claims, policy, duration))

    def _narrow(self, granted: tuple[str, ...], requested: list[str] | None) -> tuple[str, ...]:
        if not requested:
            return granted
        try:
            chosen = {self.catalog.resolve(name) for name in requested}
        except PoliciesError as exc:
            raise GrantInvalid(str(exc)) from None
        extra = sorted(chosen - set(granted))
        if extra:
            raise PolicyDenied(
                f"not granted to this agent: {', '.join(extra)}; an agent can "
                "narrow its grant, never widen it",
                models=extra,
            )
        return tuple(sorted(chosen))

    def _limits(self, claims: dict[str, Any], models: tuple[str, ...]) -> int:
        """The longest STS duration allowed now: org policy (re-checked) and the grant."""
        ceiling = self._org_ceiling(claims["act"]["sub"], claims["sub"].split(".", 2)[1], models)
        if claims.get("max_sts_s"):
            ceiling = min(ceiling, int(claims["max_sts_s"]))
        return ceiling

    def _authorize(self, email: str, agent: str, models: tuple[str, ...]) -> int:
        """Raises: PolicyDenied (not cached: a refusal is recomputed every time)."""
        try:
            return self.org.authorize(email, agent, list(models), 1).max_sts_s
        except PoliciesError as exc:
            raise PolicyDenied(f"the org policy no longer allows this grant: {exc}") from None

    def _compile(self, models: tuple[str, ...]) -> tuple[str, str]:
        """The session policy for a model set and its short digest (the cache key part)."""
        try:
            policy = compile_session_policy(
                models, self.catalog, region=self.org.aws.region, account_id=self.org.aws.account_id
            )
        except PoliciesError as exc:
            raise GrantInvalid(str(exc)) from None
        return policy, hashlib.sha256(policy.encode()).hexdigest()[:16]

    async def _single_flight(self, key: tuple[str, ...], make: Any) -> AwsCredentials:
        pending = self.cache.inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[AwsCredentials] = asyncio.get_running_loop().create_future()
        self.cache.inflight[key] = future
        try:
            creds: AwsCredentials = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self.cache.inflight.pop(key, None)
        self.cache.put(key, creds)
        future.set_result(creds)
        return creds

    async def _assume(self, claims: dict[str, Any], policy: str, duration: int) -> AwsCredentials:
        assertion = self.sts_assertion(claims)
        return await self.sts.assume(
            role_arn=self.org.aws.role_arn,
            session_name=session_name(claims["sub"]),
            token=assertion,
            policy=policy,
            duration_s=duration,
        )

    def sts_assertion(self, claims: dict[str, Any]) -> str:
        """The short-lived token STS sees: agent sub, person as source identity, tags."""
        now = int(self.clock())
        email, agent = claims["act"]["sub"], claims["sub"].split(".", 2)[1]
        tags = {
            "vouch:User": [email],
            "vouch:Agent": [agent],
            "vouch:Delegation": [claims["dlg"]],
            "vouch:AccessType": ["agent"],
        }
        return mint(
            {
                "iss": self.issuer,
                "aud": self.sts_audience,
                "sub": claims["sub"],
                "iat": now,
                "exp": now + self.assertion_ttl_s,
                "jti": secrets.token_urlsafe(16),
                "https://aws.amazon.com/source_identity": email,
                "https://aws.amazon.com/tags": {
                    "principal_tags": tags,
                    "transitive_tag_keys": sorted(tags),
                },
            },
            typ=STS_TYP,
            keys=self.keys,
        )


def _clamp(requested: int | None, ceiling: int) -> int:
    # Issued credentials cannot be recalled, so the default is the shortest STS allows;
    # agents that want fewer refreshes ask for more, up to the ceiling.
    ceiling = max(MIN_DURATION_S, ceiling)
    return max(MIN_DURATION_S, min(int(requested or MIN_DURATION_S), ceiling))
