"""Everything a request needs, built once from Settings at start and closed at stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis.asyncio as aioredis
from botocore.config import Config

from broker.actions import ActionTaps
from broker.assertion import RelyingParty
from broker.audit import Audit
from broker.authorize import Authorizer
from broker.aws_cut import AwsCut
from broker.challenges import Challenges
from broker.credential_cache import CachedProvider
from broker.decoys import LoginDecoys
from broker.delegation import Delegations
from broker.delegation_requests import DelegationRequests
from broker.delegation_store import DelegationStore
from broker.dpop import normalize_htu
from broker.exchange import Exchange
from broker.exchange_audit import ExchangeAudit
from broker.invites import Invites
from broker.keys import KeyRing, SigningKeyError, kms_key_ring, load_key_ring
from broker.keytap import KeyTaps
from broker.metrics import Metrics
from broker.providers import PROVIDERS, CredentialProvider
from broker.ratelimit import RateLimits
from broker.registry import Registry
from broker.replication import Replication
from broker.revocation import Revocations
from broker.revoke import Revoker
from broker.session import session_expectation
from broker.settings import Settings
from broker.signin import SignIn
from broker.signing_keys import SigningKeys
from broker.spend_follower import SpendFollower, log_group_of
from broker.store import connect
from broker.tokens import Expectation
from broker.usage import UsageReports, reports_for
from broker.usage_sources import logs_client
from policies import Catalog, OrgPolicy, load_org_policy

log = logging.getLogger("vouch.services")


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
    revoker: Revoker
    signin: SignIn
    actions: ActionTaps
    delegations: Delegations
    requests: DelegationRequests
    exchanges: dict[str, Exchange]
    limits: RateLimits
    session_expect: Expectation
    signing_keys: SigningKeys
    aws_cut: AwsCut
    usage: UsageReports
    """Usage reports from Bedrock's invocation logs (GET /v1/usage)."""
    spend: SpendFollower
    """Enforces delegation budgets from the invocation log (CloudWatch Logs sources)."""
    metrics: Metrics = field(default_factory=Metrics)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        """Start the background work: keeping the signing keys current, writing the counted
        exchanges to the audit trail, writing revocations to AWS (when the broker has AWS
        credentials of its own), dropping connections to a Redis primary the sentinels
        replaced."""
        self._tasks.append(asyncio.create_task(self.signing_keys.run()))
        if self.settings.audit_exchange_interval_s > 0:
            for exchange in self.exchanges.values():
                self._tasks.append(asyncio.create_task(exchange.audit.run()))
        watch = self.revocations.replication.watch()
        if watch is not None:
            self._tasks.append(asyncio.create_task(watch.run()))
        if self.spend.enabled:
            self._tasks.append(asyncio.create_task(self.spend.run(asyncio.Event())))
        else:
            log.warning(
                "delegation budgets are recorded but not enforced: the spend follower reads"
                " Bedrock's invocation log from CloudWatch Logs only (usage_source ="
                " cloudwatch[:GROUP], and AWS credentials of the broker's own); see"
                " docs/usage.md, Budgets"
            )
        if self.aws_cut.enabled:
            self._tasks.append(asyncio.create_task(self.aws_cut.run(asyncio.Event())))
        else:
            log.warning(
                "revocations will not reach live AWS sessions: the broker has no AWS"
                " credentials of its own (or aws.cut_sessions is off); see docs/aws-setup.md"
            )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for exchange in self.exchanges.values():  # what was counted, before Redis goes
            await exchange.audit.flush()
        await self.revocations.close()
        await self.redis.aclose()
        for exchange in self.exchanges.values():
            exchange.provider.close()

    @property
    def exchange(self) -> Exchange:
        """The AWS exchange (POST /v1/credentials/aws)."""
        return self.exchanges["aws"]


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
    # Keys given by the caller are kept as given; keys from the directory are re-read.
    directory = Path(settings.signing_keys) if keys is None and settings.signing_keys else None
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
        replication=Replication(
            redis,
            replicas=settings.revocation_replicas,
            wait_ms=settings.revocation_wait_ms,
            allow_unsafe=settings.redis_allow_unsafe,
        ),
    )
    challenges = Challenges(redis, ttl_s=settings.challenge_ttl_s)
    rp = RelyingParty(
        settings.rp_id,
        settings.rp_name,
        settings.origins,
        aaguids=settings.aaguids,
        allow_software=settings.allow_software_keys,
    )
    aws_cut = aws_cut_for(settings, org, redis, metrics)
    taps = KeyTaps(rp, registry, audit, revocations, aws_cut)
    actions = ActionTaps(taps, challenges)
    signin = SignIn(
        rp=rp,
        registry=registry,
        taps=taps,
        actions=actions,
        invites=invites,
        challenges=challenges,
        decoys=LoginDecoys(redis),
        revocations=revocations,
        audit=audit,
        keys=keys,
        issuer=settings.issuer,
        session_ttl_s=settings.session_ttl_s,
        require_uv=org.require_user_verification,
    )
    store = DelegationStore(redis)
    requests = DelegationRequests(
        redis,
        ttl_s=settings.request_ttl_s,
        max_per_person=settings.request_max_pending_per_person,
        max_per_address=settings.request_max_pending_per_address,
    )
    exchanges = {
        name: exchange_for(
            factory(settings, org, catalog, keys, metrics),
            settings=settings,
            org=org,
            catalog=catalog,
            keys=keys,
            revocations=revocations,
            path=f"/v1/credentials/{name}",
            audit=audit,
        )
        for name, factory in PROVIDERS.items()
    }
    usage = reports_for(settings, catalog, org)
    delegations = Delegations(
        org=org,
        store=store,
        taps=taps,
        challenges=challenges,
        audit=audit,
        keys=keys,
        issuer=settings.issuer,
        requests=requests,
        checks=[e.provider.check for e in exchanges.values()],
        priced=lambda model: usage.prices.price_of(model, catalog)[1] is not None,
    )
    revoker = Revoker(
        org=org,
        registry=registry,
        invites=invites,
        delegations=store,
        revocations=revocations,
        audit=audit,
        caches=[e.provider for e in exchanges.values()],
        aws=aws_cut,
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
        revoker=revoker,
        signin=signin,
        actions=actions,
        delegations=delegations,
        requests=requests,
        exchanges=exchanges,
        limits=RateLimits(
            redis,
            {
                "login": settings.rate_login_per_min,
                "enroll": settings.rate_login_per_min,
                "request": settings.rate_requests_per_min,
                "approval": settings.rate_approvals_per_min,
                "poll": settings.rate_polls_per_min,
                "usage report": settings.rate_usage_per_min,
            },
        ),
        session_expect=session_expectation(settings.issuer, settings.clock_leeway_s),
        aws_cut=aws_cut,
        usage=usage,
        spend=spend_follower_for(
            settings, usage=usage, store=store, revoker=revoker, audit=audit, metrics=metrics
        ),
        signing_keys=SigningKeys(
            keys,
            redis,
            directory=None if settings.kms_key_id else directory,
            interval_s=settings.key_refresh_s,
        ),
        metrics=metrics,
    )


def exchange_for(
    provider: CredentialProvider,
    *,
    settings: Settings,
    org: OrgPolicy,
    catalog: Catalog,
    keys: KeyRing,
    revocations: Revocations,
    path: str,
    audit: Audit,
) -> Exchange:
    """The exchange pipeline in front of one provider at `path`: verify, revocation,
    authorize, cache, audit."""
    return Exchange(
        keys=keys,
        issuer=settings.issuer,
        leeway_s=settings.clock_leeway_s,
        revocations=revocations,
        authorizer=Authorizer(catalog, org, min_duration_s=provider.min_duration_s),
        provider=CachedProvider(provider),
        htu=normalize_htu(settings.issuer.rstrip("/") + path) or "",
        proof_max_age_s=settings.dpop_proof_max_age_s,
        token_cache_entries=settings.verified_token_cache_entries,
        audit=ExchangeAudit(audit, provider.name, settings.audit_exchange_interval_s),
    )


def spend_follower_for(
    settings: Settings,
    *,
    usage: UsageReports,
    store: DelegationStore,
    revoker: Revoker,
    audit: Audit,
    metrics: Metrics,
) -> SpendFollower:
    """The spend follower, enabled when `usage_source` is CloudWatch Logs and the broker has
    AWS credentials of its own (boto3's chain)."""
    group = log_group_of(settings.usage_source, settings.aws.invocation_log_group)
    logs = None
    if group is not None and boto3.session.Session().get_credentials() is not None:
        logs = logs_client(settings.aws)
    return SpendFollower(
        store.redis,
        logs,
        group=group,
        catalog=usage.catalog,
        prices=usage.prices,
        roles=usage.roles,
        store=store,
        revoker=revoker,
        audit=audit,
        interval_s=settings.spend_poll_interval_s,
        metrics=metrics,
    )


def aws_cut_for(
    settings: Settings, org: OrgPolicy, redis: aioredis.Redis, metrics: Metrics
) -> AwsCut:
    """The AWS cut, enabled when the broker has AWS credentials of its own (boto3's chain)."""
    iam = None
    if settings.aws.cut_sessions:
        session = boto3.session.Session()
        if session.get_credentials() is not None:
            iam = session.client(
                "iam",
                endpoint_url=settings.aws.endpoint_url,
                region_name=settings.aws.region,
                config=Config(
                    retries={"total_max_attempts": 2, "mode": "standard"},
                    connect_timeout=2,
                    read_timeout=5,
                ),
            )
    # The people role gets the same Deny; entries live as long as either role's sessions.
    people = org.aws.people_role_name if org.use_models else None
    longest = max(org.aws.role_max_session_s, org.aws.people_role_max_session_s if people else 0)
    return AwsCut(
        redis,
        iam,
        role_name=org.aws.role_name,
        people_role_name=people,
        policy_name=settings.aws.revocation_policy,
        max_session_s=longest,
        metrics=metrics,
    )
