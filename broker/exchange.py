"""Exchange: a token -> scoped, short-lived cloud credentials.

verify the agent token (cached by its exact text, broker/verified_tokens.py) -> for a token
bound to a key, its DPoP proof (broker/dpop.py) -> revocation of its handles and of the key
that signed it, with the proof's jti recorded (one Redis round trip, fail closed) ->
authorize (cloud-neutral grant) -> cached provider (single flight) -> after a provider call,
revocation again (one MGET) -> the credential document. Every outcome, issued or refused,
goes to the audit trail (`broker.exchange_audit`).

A person's own credentials (`exchange_person`) take the same steps from their session token:
verified as a session (never an agent token), its person, key, logout and signing-key
handles checked, the org policy's [[use]] rules instead of a grant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.agent_token import expectation
from broker.authorize import Authorizer, CredentialGrant, Principal
from broker.credential_cache import CachedProvider
from broker.dpop import ProofVerifier
from broker.errors import BudgetExceeded, TokenRevoked
from broker.exchange_audit import ExchangeAudit
from broker.keys import KeyRing
from broker.providers import IssuedCredentials
from broker.request_context import note_principal
from broker.revocation import Revocations, signing_key_key
from broker.session import session_expectation, verify_session
from broker.verified_tokens import VerifiedTokens


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
    htu: str = ""
    """This endpoint's public URL (the issuer's, so it holds behind a reverse proxy): what
    a DPoP proof's htu must name."""
    proof_max_age_s: int = 60
    token_cache_entries: int = 10_000

    def __post_init__(self) -> None:
        self.expect = expectation(self.issuer, self.leeway_s)
        self.session_expect = session_expectation(self.issuer, self.leeway_s)
        self.tokens = VerifiedTokens(self.keys, self.expect, max_entries=self.token_cache_entries)
        self.proofs = ProofVerifier(max_age_s=self.proof_max_age_s, leeway_s=self.leeway_s)

    async def exchange(
        self,
        token: str,
        *,
        proof: str | None = None,
        models: list[str] | None = None,
        duration_s: int | None = None,
    ) -> IssuedCredentials:
        """Credentials for an agent token; a bound token's `proof` (the DPoP header) is
        checked, an unbound token's is ignored (it is a bearer token either way).

        Raises: TokenInvalid, TokenExpired, TokenRevoked, BudgetExceeded, DpopProofInvalid,
        GrantInvalid, PolicyDenied, RateLimited, StoreUnavailable, StsRejected, StsUnavailable."""
        async with self.audit.outcome(models) as outcome:
            now = self.clock()
            verified = self.tokens.verify(token, now)
            claims = verified.claims
            outcome.principal = Principal.of_agent(claims)
            note_principal(claims.sub)
            replay = None
            if claims.cnf is not None:
                checked = self.proofs.verify(
                    proof, jkt=claims.cnf.jkt, token=token, method="POST", htu=self.htu, now=now
                )
                replay = (checked.replay_key, checked.remember_s)
            await self.revocations.check(
                [*claims.handles(), signing_key_key(verified.kid)],
                issued_at=claims.iat,
                rate=(claims.dlg, claims.rate) if claims.rate else None,
                proof=replay,
            )
            grant = self.authorizer.authorize(
                outcome.principal, models=models, duration_s=duration_s, now=now
            )
            served = await self.provider.issue(grant, now)
            if served.fresh:
                await self._still_unrevoked(claims.handles(), claims.iat, grant)
            outcome.grant, outcome.fresh = grant, served.fresh
        return served.credentials

    async def exchange_person(
        self, token: str, *, models: list[str] | None = None, duration_s: int | None = None
    ) -> IssuedCredentials:
        """A person's own credentials for their session token (docs/design.md, 3.4).

        Raises: TokenInvalid (an agent token included: its type is not a session's),
        TokenExpired, TokenRevoked, GrantInvalid, PolicyDenied (no own use, or a model
        outside it), StoreUnavailable, StsRejected, StsUnavailable."""
        async with self.audit.outcome(models) as outcome:
            now = self.clock()
            person = verify_session(token, self.session_expect, keys=self.keys, now=now)
            note_principal(person.email)
            # Who asked, for the audit of a refusal by the policy (the models come with the grant).
            outcome.principal = Principal.of_person(person, ())
            handles = person.handles()
            await self.revocations.check(handles, issued_at=person.issued_at)
            grant = self.authorizer.authorize_person(
                person, models=models, duration_s=duration_s, now=now
            )
            outcome.principal = grant.principal
            served = await self.provider.issue(grant, now)
            if served.fresh:
                await self._still_unrevoked(handles, person.issued_at, grant)
            outcome.grant, outcome.fresh = grant, served.fresh
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
        except (TokenRevoked, BudgetExceeded):
            self.provider.forget(grant.key)
            raise
