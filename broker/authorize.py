"""Authorize: who is asking + what they narrow to + now -> a cloud-neutral credential grant.

The principal carries what its token granted; the org policy is checked again (it may have
tightened since the grant), the requested models must be a subset of the grant, and the
duration is clamped between the provider's floor and the tightest ceiling, then to what is
left of the token's life (never below the floor: the provider must end such credentials
at `expires_at` itself). No cloud here: a provider turns the grant into credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import msgspec

from broker.agent_token import AgentClaims
from broker.errors import GrantInvalid, PolicyDenied, from_policy
from policies import Catalog, OrgPolicy
from policies.errors import PoliciesError

GrantKey = tuple[str, tuple[str, ...], int, int]
"""(principal id, models, term, expiry): equal keys get interchangeable credentials.

Everything that shapes the credentials or their policy is in it except the clamp to the
token's remaining life, which changes by the second: credentials issued earlier for the same
key end no later than ones issued now would, so serving them until they are due is safe."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who credentials are for, and what their token lets them have."""

    id: str
    """What a revocation names to evict cached credentials: the delegation id for agents."""
    sub: str
    """The web identity subject (the agent sub)."""
    email: str
    agent: str
    key: str
    """The approving security key's cid."""
    models: tuple[str, ...]
    max_duration_s: int | None
    expires_at: int

    @classmethod
    def of_agent(cls, claims: AgentClaims) -> Principal:
        return cls(
            id=claims.dlg,
            sub=claims.sub,
            email=claims.person,
            agent=claims.agent,
            key=claims.act.cid,
            models=claims.models,
            max_duration_s=claims.max_sts_s,
            expires_at=claims.exp,
        )


class CredentialGrant(msgspec.Struct, frozen=True, kw_only=True):
    """What one set of credentials may do: the principal, its models, how long, until when."""

    principal: Principal
    models: tuple[str, ...]
    """Canonical ids, sorted."""
    term_s: int
    """The duration asked for, within the floor and the ceilings."""
    duration_s: int
    """What the provider is asked for: `term_s`, at most the token's remaining life, at least
    the provider's floor."""

    @property
    def expires_at(self) -> int:
        """When the grant ends (epoch seconds): nothing issued for it may be used after."""
        return self.principal.expires_at

    @property
    def key(self) -> GrantKey:
        return (self.principal.id, self.models, self.term_s, self.expires_at)


@dataclass
class Authorizer:
    catalog: Catalog
    org: OrgPolicy
    min_duration_s: int
    """The provider's shortest credential (STS: 900 s); also the default."""

    def __post_init__(self) -> None:
        # The org policy and catalog are fixed for the process's life, so what they answer
        # for a (person, agent, models) or a model name is computed once, not per request.
        self._org_ceiling = lru_cache(maxsize=4096)(self._org_allows)
        self._resolve = lru_cache(maxsize=4096)(self._resolve_names)

    def authorize(
        self,
        principal: Principal,
        *,
        models: list[str] | None,
        duration_s: int | None,
        now: float,
    ) -> CredentialGrant:
        """Raises: GrantInvalid (unknown model), PolicyDenied (widening, or policy says no)."""
        chosen = self._narrow(principal.models, models)
        ceiling = self._org_ceiling(principal.email, principal.agent, chosen)
        if principal.max_duration_s:
            ceiling = min(ceiling, principal.max_duration_s)
        term = self._clamp(duration_s, ceiling)
        # Credentials never outlive the token: a token with less than the floor left still
        # gets the floor, and the provider ends those credentials at expires_at.
        left = int(principal.expires_at - now)
        return CredentialGrant(
            principal=principal,
            models=chosen,
            term_s=term,
            duration_s=max(self.min_duration_s, min(term, left)),
        )

    def _narrow(self, granted: tuple[str, ...], requested: list[str] | None) -> tuple[str, ...]:
        if requested is None:
            return granted
        if not requested:  # the route refuses it too: "no models" never means "all of them"
            raise GrantInvalid("models: name at least one model, or leave it out for the grant")
        chosen = self._resolve(tuple(requested))
        extra = sorted(set(chosen) - set(granted))
        if extra:
            raise PolicyDenied(
                f"not granted to this agent: {', '.join(extra)}; an agent can "
                "narrow its grant, never widen it",
                models=extra,
            )
        return chosen

    def _resolve_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Raises: GrantInvalid (not cached: a refusal is recomputed every time)."""
        try:
            return tuple(sorted({self.catalog.resolve(name) for name in names}))
        except PoliciesError as exc:
            raise from_policy(exc) from None

    def _org_allows(self, email: str, agent: str, models: tuple[str, ...]) -> int:
        """The longest credential the org policy allows now. Raises: PolicyDenied."""
        try:
            return self.org.authorize(email, agent, list(models), 1).max_sts_s
        except PoliciesError as exc:
            raise from_policy(
                exc, invalid=PolicyDenied, prefix="the org policy no longer allows this grant: "
            ) from None

    def _clamp(self, requested: int | None, ceiling: int) -> int:
        # Issued credentials cannot be recalled, so the default is the shortest allowed;
        # agents that want fewer refreshes ask for more, up to the ceiling.
        floor = self.min_duration_s
        return max(floor, min(requested or floor, max(floor, ceiling)))
