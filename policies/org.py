"""The org policy: who may delegate which models to which agents, for how long, and how fast;
and, separately, which models people may use themselves.

A grant is allowed when every requested model is covered by some rule that matches the
person and whose `max_ttl` admits the TTL. Each model's limits are the most generous of the
rules that allow it; the grant's limits are the strictest across its models, because one
session policy covers them all. A person's own use (`[[use]]` rules) is decided the same way
with its own rules: what someone may delegate and what they may use are independent (Opus
for themselves and only Haiku for their agents, or the reverse). `load_org_policy`
(org_file.py) builds an `OrgPolicy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

import msgspec

from policies.catalog import Catalog
from policies.errors import GrantDenied, InvalidGrant
from policies.identity import check_agent_name, normalize_email


def format_duration(seconds: int) -> str:
    """8h, 2h30m, 90s: how people wrote the limit."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n) or "0s"


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What a rule allows beyond the models themselves."""

    max_ttl_s: int
    """Longest delegation (agent token lifetime)."""
    max_sts_s: int
    """Longest STS session per exchange (DurationSeconds)."""
    max_active_delegations: int
    """Delegations one person may have live at once (the broker counts them)."""
    exchanges_per_hour: int | None = None
    """Credential exchanges per delegation per hour; None is no cap."""
    require_key_binding: bool = False
    """Delegations must bind the agent token to the agent's key (DPoP, RFC 9449)."""
    max_budget: Decimal | None = None
    """Largest budget a delegation may carry (price table currency); None is no cap."""
    require_budget: bool = False
    """Delegations must carry a budget."""


class Authorized(msgspec.Struct, frozen=True, kw_only=True):
    """A grant the org policy allows, with the limits that apply to it."""

    email: str
    """Normalised (see `normalize_email`)."""
    agent: str
    models: tuple[str, ...]
    """Canonical ids, sorted: what goes into the agent token's `models` claim."""
    ttl_s: int
    max_sts_s: int
    max_active_delegations: int
    exchanges_per_hour: int | None
    require_key_binding: bool = False
    """The agent token must be bound to the agent's key (any of its models requires it)."""
    max_budget: Decimal | None = None
    """The largest budget allowed (the strictest of its models'); None: no cap."""
    require_budget: bool = False
    """A budget is required (any of its models requires one)."""


@dataclass(frozen=True)
class Rule:
    """One [[rules]] table, resolved: who, which canonical ids, which limits."""

    index: int
    emails: frozenset[str]
    domains: frozenset[str]
    groups: tuple[str, ...]
    models: frozenset[str]
    limits: Limits


class SelfUse(msgspec.Struct, frozen=True, kw_only=True):
    """A person's own use of models that the org policy allows."""

    email: str
    """Normalised (see `normalize_email`)."""
    models: tuple[str, ...]
    """Canonical ids, sorted."""
    max_duration_s: int
    """Longest credential: the strictest of the models' most generous `max_duration`."""


@dataclass(frozen=True)
class UseRule:
    """One [[use]] table, resolved: who may use which canonical ids themselves, how long."""

    index: int
    emails: frozenset[str]
    domains: frozenset[str]
    groups: tuple[str, ...]
    models: frozenset[str]
    max_duration_s: int
    """Longest credential a person gets for these models (at most the people role's
    maximum session)."""


_R = TypeVar("_R", Rule, UseRule)


@dataclass(frozen=True)
class AwsAccount:
    """The policy's [aws] table: where credentials come from and what they may name."""

    account_id: str
    role_arn: str
    """The role the broker assumes for agents (given as role_arn or role_name)."""
    region: str
    """Home region: where agents call Bedrock and what session policies name."""
    sts_audience: str
    """The `aud` STS expects in the broker's assertion (the OIDC provider's client id)."""
    role_max_session_s: int
    """The role's MaxSessionDuration: no STS session may be longer."""
    people_role_arn: str = ""
    """The role people's own credentials come from (people_role_arn or people_role_name);
    empty when the policy lets nobody use models themselves."""
    people_role_max_session_s: int = 3600
    """The people role's MaxSessionDuration."""

    @property
    def role_name(self) -> str:
        """The agents role's name (the ARN's last path element)."""
        return self.role_arn.rsplit("/", 1)[1]

    @property
    def people_role_name(self) -> str | None:
        """The people role's name, or None when there is none."""
        return self.people_role_arn.rsplit("/", 1)[1] if self.people_role_arn else None


@dataclass(frozen=True)
class OrgPolicy:
    """A validated org policy bound to the catalog its names were resolved against."""

    catalog: Catalog
    aws: AwsAccount
    require_user_verification: bool
    default_ttl_s: int
    admins: frozenset[str]
    groups: Mapping[str, frozenset[str]]
    rules: tuple[Rule, ...]
    use_rules: tuple[UseRule, ...] = ()
    """Who may use which models themselves ([[use]]); independent of `rules`."""

    @property
    def allowed_models(self) -> tuple[str, ...]:
        """Every canonical id some rule allows: what the role's permissions must cover."""
        return tuple(sorted(set().union(*(r.models for r in self.rules))))

    @property
    def use_models(self) -> tuple[str, ...]:
        """Every canonical id some [[use]] rule allows: what the people role must cover."""
        return tuple(sorted(set().union(*(r.models for r in self.use_rules))))

    @property
    def max_token_lifetime_s(self) -> int:
        """The longest delegation any rule allows (how long a revocation must be kept)."""
        return max((r.limits.max_ttl_s for r in self.rules), default=self.default_ttl_s)

    def is_admin(self, email: str) -> bool:
        """Whether email is one of `admins` (a malformed email is not)."""
        try:
            return normalize_email(email) in self.admins
        except InvalidGrant:
            return False

    def models_for(self, email: str) -> tuple[str, ...]:
        """Canonical ids this person may delegate (for any TTL), sorted.

        Raises:
            InvalidGrant: malformed email.
        """
        rules = self._rules_for(normalize_email(email))
        return tuple(sorted(set().union(*(r.models for r in rules))))

    def delegation_limits(self, email: str) -> dict[str, int]:
        """Canonical id -> the longest delegation (max_ttl) this person may grant with it.

        Raises:
            InvalidGrant: malformed email.
        """
        limits: dict[str, int] = {}
        for rule in self._rules_for(normalize_email(email)):
            for model in rule.models:
                limits[model] = max(limits.get(model, 0), rule.limits.max_ttl_s)
        return limits

    def use_limits(self, email: str) -> dict[str, int]:
        """Canonical id -> the longest credential this person may have for their own use
        of it (the most generous [[use]] rule that covers it).

        Raises:
            InvalidGrant: malformed email.
        """
        limits: dict[str, int] = {}
        for rule in self._matching(normalize_email(email), self.use_rules):
            for model in rule.models:
                limits[model] = max(limits.get(model, 0), rule.max_duration_s)
        return limits

    def authorize_use(self, email: str, models: Iterable[str] | None = None) -> SelfUse:
        """Whether this person may use these models themselves (None: every model they may).

        Models may be ids, profile ids, application-profile ARNs or aliases.

        Raises:
            InvalidGrant: malformed email or an empty model list.
            UnknownModel: a name the catalog does not know.
            ModelNotCallable: a model that cannot be called from the home region as named.
            GrantDenied: person-not-allowed (no [[use]] rule names them) or
                model-not-allowed (`model` says which).
        """
        person = normalize_email(email)
        allowed = self.use_limits(person)
        if not allowed:
            raise GrantDenied("person-not-allowed", f"{person} may not use any model themselves")
        if models is None:
            ids = sorted(allowed)
        else:
            ids = sorted({self.catalog.resolve(name) for name in models})
            if not ids:
                raise InvalidGrant("models", "name at least one model")
        for model in ids:
            if model not in allowed:
                self.catalog.require_callable(model, self.aws.region, allowed)
                name = self.catalog.short_name(model)
                raise GrantDenied(
                    "model-not-allowed",
                    f"{person} may not use {name} ({model}) themselves",
                    model=model,
                )
        return SelfUse(email=person, models=tuple(ids), max_duration_s=min(allowed[m] for m in ids))

    def authorize(
        self,
        email: str,
        agent: str,
        models: Iterable[str],
        ttl_s: int,
        *,
        bound: bool | None = None,
        budget: Decimal | None = None,
    ) -> Authorized:
        """Whether this person may delegate these models to this agent for ttl_s seconds;
        `bound` False (an agent token not bound to a key) is refused where a rule requires
        binding, None leaves that to the caller (`Authorized.require_key_binding`);
        `budget` (None: none) must be given where a rule requires one and stay within
        `max_budget`.

        Models may be ids, profile ids, application-profile ARNs or aliases.

        Raises:
            InvalidGrant: malformed email, agent name, TTL or an empty model list.
            UnknownModel: a name the catalog does not know.
            ModelNotCallable: a model that cannot be called from the home region as named.
            GrantDenied: the policy says no; `check`, `model` and `limit` say why
                (budget-required, budget-over-max for budgets).
        """
        person = normalize_email(email)
        check_agent_name(agent)
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
            raise InvalidGrant("ttl", f"{ttl_s!r} is not a positive number of seconds")
        ids = sorted({self.catalog.resolve(name) for name in models})
        if not ids:
            raise InvalidGrant("models", "name at least one model")
        rules = self._rules_for(person)
        if not rules:
            raise GrantDenied("person-not-allowed", f"{person} may not delegate any model")
        limits = [self._limits(person, model, ttl_s, rules) for model in ids]
        binding = any(x.require_key_binding for x in limits)
        if binding and bound is False:
            raise GrantDenied(
                "key-binding-required",
                "the org policy requires binding this delegation to the agent's key"
                " (vouch delegate --bind-key, or an agent request from the SDK)",
            )
        max_budget = _strictest_budget(x.max_budget for x in limits)
        require_budget = any(x.require_budget for x in limits)
        _check_budget(budget, max_budget, require_budget)
        return Authorized(
            email=person,
            agent=agent,
            models=tuple(ids),
            ttl_s=ttl_s,
            max_sts_s=min(x.max_sts_s for x in limits),
            max_active_delegations=min(x.max_active_delegations for x in limits),
            exchanges_per_hour=_strictest_rate(x.exchanges_per_hour for x in limits),
            require_key_binding=binding,
            max_budget=max_budget,
            require_budget=require_budget,
        )

    def _rules_for(self, person: str) -> list[Rule]:
        return self._matching(person, self.rules)

    def _matching(self, person: str, rules: Iterable[_R]) -> list[_R]:
        """The rules (delegation or use) that name this person, by email, domain or group."""
        domain = person.rpartition("@")[2]
        return [
            r
            for r in rules
            if person in r.emails
            or domain in r.domains
            or any(person in self.groups[g] for g in r.groups)
        ]

    def _limits(self, person: str, model: str, ttl_s: int, rules: list[Rule]) -> Limits:
        """The most generous limits among the rules that allow this model at this TTL."""
        allowed = set().union(*(r.models for r in rules))
        self.catalog.require_callable(model, self.aws.region, allowed)
        covering = [r for r in rules if model in r.models]
        name = self.catalog.short_name(model)
        if not covering:
            raise GrantDenied(
                "model-not-allowed", f"{person} may not delegate {name} ({model})", model=model
            )
        fitting = [r.limits for r in covering if ttl_s <= r.limits.max_ttl_s]
        if not fitting:
            most = max(r.limits.max_ttl_s for r in covering)
            raise GrantDenied(
                "ttl-exceeded",
                f"ttl {format_duration(ttl_s)} exceeds the {format_duration(most)} maximum"
                f" for {name}",
                model=model,
                limit=most,
            )
        return Limits(
            max_ttl_s=max(x.max_ttl_s for x in fitting),
            max_sts_s=max(x.max_sts_s for x in fitting),
            max_active_delegations=max(x.max_active_delegations for x in fitting),
            exchanges_per_hour=_most_generous_rate(x.exchanges_per_hour for x in fitting),
            # required only when every rule that allows the model requires it
            require_key_binding=all(x.require_key_binding for x in fitting),
            max_budget=_most_generous_budget(x.max_budget for x in fitting),
            require_budget=all(x.require_budget for x in fitting),
        )


def _strictest_rate(rates: Iterable[int | None]) -> int | None:
    caps = [r for r in rates if r is not None]
    return min(caps) if caps else None


def _most_generous_rate(rates: Iterable[int | None]) -> int | None:
    caps = list(rates)
    return None if None in caps else max(c for c in caps if c is not None)


def _strictest_budget(caps: Iterable[Decimal | None]) -> Decimal | None:
    given = [c for c in caps if c is not None]
    return min(given) if given else None


def _most_generous_budget(caps: Iterable[Decimal | None]) -> Decimal | None:
    given = list(caps)
    return None if None in given else max(c for c in given if c is not None)


def _check_budget(budget: Decimal | None, cap: Decimal | None, required: bool) -> None:
    """Raises: GrantDenied budget-required or budget-over-max."""
    if budget is None:
        if required:
            raise GrantDenied(
                "budget-required",
                "the org policy requires a budget on this delegation (vouch delegate --budget)",
            )
        return
    if cap is not None and budget > cap:
        raise GrantDenied(
            "budget-over-max",
            f"budget {budget} exceeds the org policy's maximum of {cap} for these models",
        )
