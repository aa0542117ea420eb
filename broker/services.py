"""Everything a request needs, built once from Settings at start and closed at stop."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis.asyncio as aioredis

from broker.assertion import RelyingParty
from broker.audit import Audit
from broker.challenges import Challenges
from broker.delegation import Delegations
from broker.delegation_requests import DelegationRequests
from broker.errors import NotFound
from broker.exchange import Exchange
from broker.invites import Invites
from broker.keys import KeyRing, SigningKeyError, kms_key_ring, load_key_ring
from broker.metrics import Metrics
from broker.ratelimit import RateLimits
from broker.registry import Registry
from broker.revocation import Revocations
from broker.session import Person, session_expectation
from broker.settings import Settings
from broker.signin import SignIn, normalize_email
from broker.store import connect
from broker.sts import Sts
from broker.tokens import Expectation
from policies import Catalog, OrgPolicy, load_org_policy


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    keys: KeyRing
    catalog: Catalog
    org: OrgPolicy
    audit: Audit
    registry: Registry
    invites: Invites
    revocations: Revocations
    signin: SignIn
    delegations: Delegations
    requests: DelegationRequests
    exchange: Exchange
    limits: RateLimits
    session_expect: Expectation
    metrics: Metrics = field(default_factory=Metrics)

    async def close(self) -> None:
        await self.redis.aclose()
        self.exchange.sts.pool.shutdown(wait=False, cancel_futures=True)

    async def revoke(self, actor: Person, handle: str, value: str, *, reason: str) -> float:
        """Revoke by handle (delegation, agent, user, credential); returns the revocation time.

        Raises:
            NotFound: an unknown delegation or credential. InvalidRequest: a malformed email.
        """
        now = time.time()
        if handle == "delegation":
            await self.delegations.revoke(actor, value, is_admin=True, reason=reason)
            self.exchange.cache.evict_delegation(value)
            return now
        if handle == "user":
            value = normalize_email(value)
            await self.registry.disable_user(value)
        elif handle == "credential" and not await self.registry.set_state(value, "revoked"):
            raise NotFound(f"no registered security key {value!r}")
        await self.revocations.revoke_not_before(
            {"agent": "agent", "user": "user", "credential": "cred"}[handle], value, now=now
        )
        await self.audit.record(
            "revoked", actor=actor.email, handle=handle, subject=value, reason=reason
        )
        return now


def load_keys(settings: Settings) -> KeyRing:
    """The signing key ring from KMS or the key directory.

    Raises:
        SigningKeyError: no usable key.
    """
    if settings.kms_key_id:
        kms: Any = boto3.client(
            "kms", region_name=settings.aws.region, endpoint_url=settings.aws.endpoint_url
        )
        return kms_key_ring(kms, settings.kms_key_id)
    if not settings.signing_keys:
        raise SigningKeyError(
            "no signing keys: set VOUCH_SIGNING_KEYS (a directory) or VOUCH_KMS_KEY_ID"
        )
    return load_key_ring(Path(settings.signing_keys))


def load_policy(settings: Settings) -> tuple[Catalog, OrgPolicy]:
    """Raises: PolicyFileError (every problem, with its location)."""
    catalog = Catalog.builtin()
    if settings.catalog_file:
        catalog = Catalog.load(Path(settings.catalog_file), base=catalog)
    return catalog, load_org_policy(Path(settings.policy_file), catalog)


def build_services(settings: Settings, *, keys: KeyRing | None = None) -> Services:
    """Wire the stores, ceremonies and the exchange; Redis connects lazily on first use."""
    keys = keys or load_keys(settings)
    catalog, org = load_policy(settings)
    metrics = Metrics()
    redis = connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
    audit = Audit(redis, max_len=settings.audit_max_len)
    registry = Registry(redis)
    invites = Invites(redis, ttl_s=settings.invite_ttl_s)
    revocations = Revocations(
        redis,
        max_token_lifetime_s=max(settings.session_ttl_s, org.max_token_lifetime_s),
        replicas=settings.revocation_replicas,
        wait_ms=settings.revocation_wait_ms,
    )
    challenges = Challenges(redis, ttl_s=settings.challenge_ttl_s)
    signin = SignIn(
        rp=RelyingParty(
            settings.rp_id,
            settings.rp_name,
            settings.origins,
            aaguids=settings.aaguids,
            allow_software=settings.allow_software_keys,
        ),
        registry=registry,
        invites=invites,
        challenges=challenges,
        audit=audit,
        keys=keys,
        issuer=settings.issuer,
        session_ttl_s=settings.session_ttl_s,
        require_uv=org.require_user_verification,
    )
    delegations = Delegations(
        redis=redis,
        org=org,
        signin=signin,
        challenges=challenges,
        revocations=revocations,
        audit=audit,
        keys=keys,
        issuer=settings.issuer,
    )
    exchange = Exchange(
        keys=keys,
        issuer=settings.issuer,
        leeway_s=settings.clock_leeway_s,
        catalog=catalog,
        org=org,
        revocations=revocations,
        sts=Sts(
            region=settings.aws.region,
            endpoint_url=settings.aws.endpoint_url,
            timeout_s=settings.aws.sts_timeout_s,
            on_call=lambda outcome: metrics.sts_calls.labels(outcome).inc(),
        ),
        sts_audience=org.aws.sts_audience,
        assertion_ttl_s=settings.aws.sts_assertion_ttl_s,
    )
    return Services(
        settings=settings,
        redis=redis,
        keys=keys,
        catalog=catalog,
        org=org,
        audit=audit,
        registry=registry,
        invites=invites,
        revocations=revocations,
        signin=signin,
        delegations=delegations,
        requests=DelegationRequests(redis, ttl_s=settings.request_ttl_s),
        exchange=exchange,
        limits=RateLimits(
            redis,
            {
                "login": settings.rate_login_per_min,
                "enroll": settings.rate_login_per_min,
                "request": settings.rate_requests_per_min,
                "approval": settings.rate_approvals_per_min,
                "poll": settings.rate_polls_per_min,
            },
        ),
        session_expect=session_expectation(settings.issuer, settings.clock_leeway_s),
        metrics=metrics,
    )
