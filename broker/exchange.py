"""Exchange: a token -> scoped, short-lived cloud credentials.

verify the agent token -> revocation of its handles and of the key that signed it (one Redis
round trip, fail closed) -> authorize (cloud-neutral grant) -> cached provider (single flight)
-> after a provider call, revocation again (one MGET) -> the credential document.

A person's own credentials (`exchange_person`) take the same steps from their session token:
verified as a session (never an agent token), its person, key, logout and signing-key
handles checked, the org policy's [[use]] rules instead of a grant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.agent_token import expectation, verify_agent_token
from broker.authorize import Authorizer, CredentialGrant, Principal
from broker.credential_cache import CachedProvider
from broker.errors import TokenRevoked
from broker.keys import KeyRing
from broker.providers import IssuedCredentials
from broker.revocation import Revocations, signing_key_key
from broker.session import session_expectation, verify_session
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
        self.session_expect = session_expectation(self.issuer, self.leeway_s)

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
            Principal.of_agent(claims), models=models, duration_s=duration_s, now=now
        )
        served = await self.provider.issue(grant, now)
        if served.fresh:
            await self._still_unrevoked(claims.handles(), claims.iat, grant)
        return served.credentials

    async def exchange_person(
        self, token: str, *, models: list[str] | None = None, duration_s: int | None = None
    ) -> IssuedCredentials:
        """A person's own credentials for their session token (docs/design.md, 3.4).

        Raises: TokenInvalid (an agent token included: its type is not a session's),
        TokenExpired, TokenRevoked, GrantInvalid, PolicyDenied (no own use, or a model
        outside it), StoreUnavailable, StsRejected, StsUnavailable."""
        now = self.clock()
        person = verify_session(token, self.session_expect, keys=self.keys, now=now)
        handles = person.handles()
        await self.revocations.check(handles, issued_at=person.issued_at)
        grant = self.authorizer.authorize_person(
            person, models=models, duration_s=duration_s, now=now
        )
        served = await self.provider.issue(grant, now)
        if served.fresh:
            await self._still_unrevoked(handles, person.issued_at, grant)
        return served.credentials

    async def _still_unrevoked(
        self, handles: list[str], issued_at: int, grant: CredentialGrant
    ) -> None:
        """Revocation again, after a provider call that may have outlasted one.

        An STS call takes from milliseconds to seconds; a revocation acknowledged meanwhile
        must not be followed by credentials, so what remains is the time from this one MGET
        to the answer. A cache hit skips it: it answers right after the first check.

        Raises:
            TokenRevoked: revoked during the call; the credentials are dropped from the cache.
            StoreUnavailable: Redis cannot answer (fail closed).
        """
        try:
            await self.revocations.check(handles, issued_at=issued_at)
        except TokenRevoked:
            self.provider.forget(grant.key)
            raise
