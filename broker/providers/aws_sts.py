"""AWS: a credential grant -> session policy, principal tags, source identity -> STS credentials.

The broker is the OIDC issuer: it mints a short-lived assertion (aud = STS, never returned to
anyone) naming the agent, with the person as source identity and vouch:* session tags, and
calls AssumeRoleWithWebIdentity with an inline session policy that allows exactly the granted
models until the grant expires (docs/design.md, "Exchange"). A person's own credentials go
the same way through the people role: sub `user.<email>`, tag vouch:AccessType = human.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from broker.authorize import CredentialGrant, Principal
from broker.errors import PolicyDenied, from_policy
from broker.keys import KeyRing
from broker.metrics import Metrics
from broker.settings import Settings
from broker.sts import AwsCredentials, Sts
from broker.tokens import STS_TYP, mint
from policies import Catalog, OrgPolicy, compile_session_policy
from policies.attribution import agent_session_name, person_session_name
from policies.errors import PoliciesError

MIN_DURATION_S = 900  # STS's floor for DurationSeconds


def session_name(principal: Principal) -> str:
    """The RoleSessionName CloudTrail and the invocation logs show (`policies.attribution`):
    `<delegation id>.<agent>.<email>` for an agent, `user.<email>` for a person."""
    if principal.access == "human":
        return person_session_name(principal.email)
    return agent_session_name(principal.id, principal.agent, principal.email)


@dataclass
class AwsStsProvider:
    sts: Sts
    keys: KeyRing
    issuer: str
    catalog: Catalog
    role_arn: str
    region: str
    account_id: str
    sts_audience: str
    assertion_ttl_s: int
    clock: Callable[[], float]
    people_role_arn: str = ""
    """Where people's own credentials come from; empty: nobody may have any."""
    name: str = "aws"
    min_duration_s: int = MIN_DURATION_S

    def __post_init__(self) -> None:
        # A grant's session policy (its models, its end) never changes while the process runs.
        self._policy = lru_cache(maxsize=4096)(self._compile)

    async def issue(self, grant: CredentialGrant) -> AwsCredentials:
        """Raises: GrantInvalid (policy too large), PolicyDenied (a person's credentials
        without a people role), StsRejected, StsUnavailable."""
        return await self.sts.assume(
            role_arn=self.role_for(grant.principal),
            session_name=session_name(grant.principal),
            token=self.assertion(grant.principal),
            policy=self._policy(grant.models, grant.expires_at),
            duration_s=grant.duration_s,
        )

    def role_for(self, principal: Principal) -> str:
        """The role a principal's sessions go through: agents and people never share one,
        so CloudTrail tells them apart and each role trusts only its own kind of sub.

        Raises: PolicyDenied when a person asks and the org policy names no people role.
        """
        if principal.access == "agent":
            return self.role_arn
        if not self.people_role_arn:
            raise PolicyDenied(
                "the org policy names no people role: nobody may have credentials of their own",
                reason="person-not-allowed",
            )
        return self.people_role_arn

    def close(self) -> None:
        self.sts.pool.shutdown(wait=False, cancel_futures=True)

    def check(self, models: tuple[str, ...], expires_at: int) -> None:
        """Raises: GrantInvalid when the session policy for these models cannot fit STS's
        2,048 characters (the delegation would be refused at every exchange)."""
        self._compile(models, expires_at)

    def _compile(self, models: tuple[str, ...], expires_at: int) -> str:
        try:
            return compile_session_policy(
                models,
                self.catalog,
                region=self.region,
                account_id=self.account_id,
                expires_at=expires_at,
            )
        except PoliciesError as exc:
            raise from_policy(exc) from None

    def assertion(self, principal: Principal) -> str:
        """The short-lived token STS sees: the agent's or the person's sub, the person as
        source identity, tags (a person's own sessions have no agent or delegation)."""
        now = int(self.clock())
        tags = {
            "vouch:User": [principal.email],
            "vouch:Agent": [principal.agent],
            "vouch:Delegation": [principal.id],
            "vouch:Key": [principal.key],
            "vouch:AccessType": [principal.access],
        }
        if principal.access == "human":
            del tags["vouch:Agent"], tags["vouch:Delegation"]
        return mint(
            {
                "iss": self.issuer,
                "aud": self.sts_audience,
                "sub": principal.sub,
                "iat": now,
                "exp": now + self.assertion_ttl_s,
                "jti": secrets.token_urlsafe(16),
                "https://aws.amazon.com/source_identity": principal.email,
                "https://aws.amazon.com/tags": {
                    "principal_tags": tags,
                    "transitive_tag_keys": sorted(tags),
                },
            },
            typ=STS_TYP,
            keys=self.keys,
        )


def build(
    settings: Settings, org: OrgPolicy, catalog: Catalog, keys: KeyRing, metrics: Metrics
) -> AwsStsProvider:
    """The AWS provider as the settings and org policy configure it."""
    return AwsStsProvider(
        sts=Sts(
            region=settings.aws.region,
            endpoint_url=settings.aws.endpoint_url,
            timeout_s=settings.aws.sts_timeout_s,
            on_call=lambda outcome: metrics.sts_calls.labels(outcome).inc(),
        ),
        keys=keys,
        issuer=settings.issuer,
        catalog=catalog,
        role_arn=org.aws.role_arn,
        region=org.aws.region,
        account_id=org.aws.account_id,
        sts_audience=org.aws.sts_audience,
        assertion_ttl_s=settings.aws.sts_assertion_ttl_s,
        clock=time.time,
        people_role_arn=org.aws.people_role_arn,
    )
