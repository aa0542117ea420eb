"""Authorize: who is asking + what they narrow to + now -> a cloud-neutral credential grant.

The principal carries what its token granted; the org policy is checked again (it may have
tightened since the grant), the requested models must be a subset of the grant, and the
duration is clamped between the provider's floor and the tightest ceiling, then to what is
left of the token's life (never below the floor: the provider must end such credentials
at `expires_at` itself). No cloud here: a provider turns the grant into credentials.

A person's own session is a principal too (`access` "human"): what they may have is what
the org policy's [[use]] rules let them use themselves, read when they ask, and the
session's end is the token's end. Their default lifetime is the policy's ceiling rather
than the floor: tools that run `credential_process` (botocore, the AWS CLI) refresh 15
minutes before expiry, so 15-minute credentials would be fetched again on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import msgspec

from broker.agent_token import AgentClaims
from broker.errors import GrantInvalid, PolicyDenied, from_policy
from broker.session import Person
from policies import Catalog, OrgPolicy, person_sub
from policies.errors import PoliciesError

Access = Literal["agent", "human"]
"""Whose credentials: an agent's (its token's delegation) or a person's own (their session);
the STS session tag `vouch:AccessType` says which, and each has its own role."""

GrantKey = tuple[str, tuple[str, ...], int, int]
"""(principal id, models, term, expiry): equal keys get interchangeable credentials.

Everything that shapes the credentials or their policy is in it except the clamp to the
token's remaining life, which changes by the second: credentials issued earlier for the same
key end no later than ones issued now would, so serving them until they are due is safe."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who credentials are for, and what their token lets them have."""

    id: str
    """What a revocation names to evict cached credentials: the delegation id for agents,
    the session's jti for a person."""
    sub: str
    """The web identity subject: the agent sub, or `user.<email>` for a person."""
    email: str
    agent: str
    """The agent's name; empty for a person's own credentials."""
    key: str
    """The approving security key's cid (for a person: the key that signed them in)."""
    models: tuple[str, ...]
    max_duration_s: int | None
    expires_at: int
    access: Access = "agent"
    bound: bool = False
    """The agent token is bound to the agent's key (cnf.jkt; its proof was checked)."""

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
            bound=claims.cnf is not None,
        )

    @classmethod
    def of_person(cls, person: Person, models: tuple[str, ...]) -> Principal:
        """A person's own session, with the models the org policy lets them use."""
        return cls(
            id=person.jti,
            sub=person_sub(person.email),
            email=person.email,
            agent="",
            key=person.cid,
            models=models,
            max_duration_s=None,
            expires_at=person.expires_at,
            access="human",
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
        self._own_use = lru_cache(maxsize=4096)(self._org_allows_use)
        self._resolve = lru_cache(maxsize=4096)(self._resolve_names)

    def authorize_person(
        self, person: Person, *, models: list[str] | None, duration_s: int | None, now: float
    ) -> CredentialGrant:
        """A person's own credentials: the models their [[use]] rules allow, or a subset.

        Raises: PolicyDenied (no own use, or a model outside it), GrantInvalid (unknown model).
        """
        allowed = self._own_use(person.email, None)[0]
        return self.authorize(
            Principal.of_person(person, allowed), models=models, duration_s=duration_s, now=now
        )

    def authorize(
        self,
        principal: Principal,
        *,
        models: list[str] | None,
        duration_s: int | None,
        now: float,
    ) -> CredentialGrant:
        """Raises: GrantInvalid (unknown model), PolicyDenied (widening, or policy says no)."""
        chosen = self._narrow(principal, models)
        if principal.access == "human":
            ceiling = self._own_use(principal.email, chosen)[1]
            default = ceiling  # see the module docstring: credential_process refreshes early
        else:
            ceiling = self._org_ceiling(principal.email, principal.agent, chosen, principal.bound)
            default = self.min_duration_s
        if principal.max_duration_s:
            ceiling = min(ceiling, principal.max_duration_s)
        term = self._clamp(duration_s or default, ceiling)
        # Credentials never outlive the token: a token with less than the floor left still
        # gets the floor, and the provider ends those credentials at expires_at.
        left = int(principal.expires_at - now)
        return CredentialGrant(
            principal=principal,
            models=chosen,
            term_s=term,
            duration_s=max(self.min_duration_s, min(term, left)),
        )

    def _narrow(self, principal: Principal, requested: list[str] | None) -> tuple[str, ...]:
        granted = principal.models
        if requested is None:
            return granted
        if not requested:  # the route refuses it too: "no models" never means "all of them"
            raise GrantInvalid("models: name at least one model, or leave it out for the grant")
        chosen = self._resolve(tuple(requested))
        extra = sorted(set(chosen) - set(granted))
        if extra and principal.access == "human":
            raise PolicyDenied(
                f"the org policy does not let {principal.email} use {', '.join(extra)}"
                " themselves; `vouch models` lists what they may use",
                models=extra,
                reason="model-not-allowed",
            )
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

    def _org_allows(self, email: str, agent: str, models: tuple[str, ...], bound: bool) -> int:
        """The longest credential the org policy allows now (an unbound token where it now
        requires binding: none). Raises: PolicyDenied."""
        try:
            return self.org.authorize(email, agent, list(models), 1, bound=bound).max_sts_s
        except PoliciesError as exc:
            raise from_policy(
                exc, invalid=PolicyDenied, prefix="the org policy no longer allows this grant: "
            ) from None

    def _org_allows_use(
        self, email: str, models: tuple[str, ...] | None
    ) -> tuple[tuple[str, ...], int]:
        """(the models, the longest credential) of a person's own use. Raises: PolicyDenied."""
        try:
            allowed = self.org.authorize_use(email, models)
        except PoliciesError as exc:
            raise from_policy(exc, invalid=PolicyDenied) from None
        return allowed.models, allowed.max_duration_s

    def _clamp(self, requested: int, ceiling: int) -> int:
        # For agents the default (the caller's) is the shortest allowed: issued credentials
        # cannot be recalled; agents that want fewer refreshes ask for more, up to the ceiling.
        floor = self.min_duration_s
        return max(floor, min(requested, max(floor, ceiling)))
