"""Exchange: a token -> scoped, short-lived cloud credentials.

verify the agent token -> revocation of its handles and of the key that signed it (one Redis
round trip, fail closed) -> authorize (cloud-neutral grant) -> cached provider (single flight)
-> after a provider call, revocation again (one MGET) -> the credential document. Every
outcome, issued or refused, goes to the audit trail (`broker.exchange_audit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.agent_token import AgentClaims, expectation, verify_agent_token
from broker.authorize import Authorizer, CredentialGrant, Principal
from broker.credential_cache import CachedProvider
from broker.errors import TokenRevoked
from broker.exchange_audit import ExchangeAudit
from broker.keys import KeyRing
from broker.providers import IssuedCredentials
from broker.request_context import note_principal
from broker.revocation import Revocations, signing_key_key
from broker.tokens import signing_kid


@dataclass
class Exchange:
    keys: KeyRing
    issuer: str
    leeway_s: int
    revocations: Revocations
    authorizer: Authorizer
    provider: CachedProvider
    audit: ExchangeAudit
    clock: Callable[[], float] = time.time  # injected by simulations of hours of refreshes

    def __post_init__(self) -> None:
        self.expect = expectation(self.issuer, self.leeway_s)

    async def exchange(
        self, token: str, *, models: list[str] | None = None, duration_s: int | None = None
    ) -> IssuedCredentials:
        """Raises: TokenInvalid, TokenExpired, TokenRevoked, GrantInvalid, PolicyDenied,
        RateLimited, StoreUnavailable, StsRejected, StsUnavailable."""
        async with self.audit.outcome(models) as outcome:
            now = self.clock()
            claims = verify_agent_token(token, self.expect, keys=self.keys, now=now)
            outcome.principal = Principal.of_agent(claims)
            note_principal(claims.sub)
            await self.revocations.check(
                [*claims.handles(), signing_key_key(signing_kid(token))],
                issued_at=claims.iat,
                rate=(claims.dlg, claims.rate) if claims.rate else None,
            )
            grant = self.authorizer.authorize(
                outcome.principal, models=models, duration_s=duration_s, now=now
            )
            served = await self.provider.issue(grant, now)
            if served.fresh:
                await self._still_unrevoked(claims, grant)
            outcome.grant, outcome.fresh = grant, served.fresh
        return served.credentials

    async def _still_unrevoked(self, claims: AgentClaims, grant: CredentialGrant) -> None:
        """Revocation again, after a provider call that may have outlasted one.

        An STS call takes from milliseconds to seconds; a revocation acknowledged meanwhile
        must not be followed by credentials, so what remains is the time from this one MGET
        to the answer. A cache hit skips it: it answers right after the first check.

        Raises:
            TokenRevoked: revoked during the call; the credentials are dropped from the cache.
            StoreUnavailable: Redis cannot answer (fail closed).
        """
        try:
            await self.revocations.check(claims.handles(), issued_at=claims.iat)
        except TokenRevoked:
            self.provider.forget(grant.key)
            raise
