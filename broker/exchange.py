"""Exchange: a token -> scoped, short-lived cloud credentials.

verify the agent token -> revocation of its handles and of the key that signed it (one Redis
round trip, fail closed) -> authorize
(cloud-neutral grant) -> cached provider (single flight) -> the credential document.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.agent_token import expectation, verify_agent_token
from broker.authorize import Authorizer, Principal
from broker.credential_cache import CachedProvider
from broker.keys import KeyRing
from broker.providers import IssuedCredentials
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
    clock: Callable[[], float] = time.time  # injected by simulations of hours of refreshes

    def __post_init__(self) -> None:
        self.expect = expectation(self.issuer, self.leeway_s)

    async def exchange(
        self, token: str, *, models: list[str] | None = None, duration_s: int | None = None
    ) -> IssuedCredentials:
        """Raises: TokenInvalid, TokenExpired, TokenRevoked, GrantInvalid, PolicyDenied,
        RateLimited, StoreUnavailable, StsRejected, StsUnavailable."""
        now = self.clock()
        claims = verify_agent_token(token, self.expect, keys=self.keys, now=now)
        await self.revocations.check(
            [*claims.handles(), signing_key_key(signing_kid(token))],
            issued_at=claims.iat,
            rate=(claims.dlg, claims.rate) if claims.rate else None,
        )
        grant = self.authorizer.authorize(
            Principal.of_agent(claims), models=models, duration_s=duration_s
        )
        return await self.provider.issue(grant, now)
