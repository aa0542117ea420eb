"""Reading an org policy file (see examples/org.toml): every problem at once, each located.

Format in brief (durations are seconds or strings like "8h", "90m", "1d"):

    admins = ["admin@example.com"]          # may use the admin endpoints
    require_user_verification = true       # PIN/biometric on every FIDO2 assertion

    [aws]
    account_id = "123456789012"
    role_arn = "arn:aws:iam::123456789012:role/vouch-agents"   # or role_name = "vouch-agents"
    region = "us-east-1"                   # home region: session policies name it
    role_max_session = "1h"                # the role's MaxSessionDuration
    sts_audience = "sts.amazonaws.com"
    people_role_name = "vouch-people"      # or people_role_arn: people's own credentials;
    people_role_max_session = "1h"         #   needed by [[use]] rules, its MaxSessionDuration

    [defaults]                             # every rule inherits these
    ttl = "2h"                             # a delegation's TTL when none is asked for
    max_ttl = "8h"
    max_sts_duration = "1h"
    max_active_delegations = 10
    exchanges_per_hour = 120               # optional; absent means no cap
    require_key_binding = false            # agent tokens bound to the agent's key (DPoP)
    max_budget = "50.00"                   # optional: largest --budget (price table currency)
    require_budget = false                 # every delegation must carry a --budget

    [groups]
    ml-team = ["alice@example.com"]

    [[rules]]
    people = ["*@example.com", "bob@partner.example"]   # exact emails or *@domain
    groups = ["ml-team"]
    models = ["us.claude-haiku-4-5", "us.anthropic.claude-sonnet-4-5-*"]  # names or id globs
    max_ttl = "8h"                         # and any other [defaults] key but ttl

    [[use]]                                # what people may use themselves (not delegate)
    people = ["*@example.com"]             # as in [[rules]]: emails, *@domain; or groups
    models = ["us.claude-haiku-4-5"]
    max_duration = "1h"                    # longest credential (default and at most the
                                           #   people role's max session)

What a person may delegate ([[rules]]) and what they may use themselves ([[use]]) are
independent: a person named only by [[use]] delegates nothing, and the reverse.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from policies._toml import Problems, Table, read_toml, suggest
from policies.budget import parse_budget
from policies.catalog import REGION, Catalog
from policies.errors import CatalogError, InvalidGrant, PoliciesError
from policies.identity import DOMAIN, normalize_email
from policies.org import AwsAccount, Limits, OrgPolicy, Rule, UseRule

_DAY = 24 * 3600
_TOP = ("admins", "require_user_verification", "aws", "defaults", "groups", "rules", "use")
_AWS = (
    "account_id",
    "role_arn",
    "role_name",
    "region",
    "role_max_session",
    "sts_audience",
    "people_role_arn",
    "people_role_name",
    "people_role_max_session",
)
_LIMITS = (
    "max_ttl",
    "max_sts_duration",
    "max_active_delegations",
    "exchanges_per_hour",
    "require_key_binding",
    "max_budget",
    "require_budget",
)
_DEFAULTS = ("ttl", *_LIMITS)
_RULE = ("description", "people", "groups", "models", *_LIMITS)
_USE = ("description", "people", "groups", "models", "max_duration")
_ROLE_ARN = r"arn:aws:iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}"
_GROUP = r"[a-z0-9][a-z0-9_-]{0,63}"
_BUILTIN_LIMITS = Limits(
    max_ttl_s=8 * 3600, max_sts_s=3600, max_active_delegations=10, exchanges_per_hour=None
)


def load_org_policy(path: Path, catalog: Catalog) -> OrgPolicy:
    """The org policy in the TOML file at path, its model names resolved against catalog.

    Raises:
        PolicyFileError: every problem in the file, each as `file: key.path: message`.
    """
    return parse_org_policy(read_toml(path), str(path), catalog)


def parse_org_policy(data: dict[str, Any], file: str, catalog: Catalog) -> OrgPolicy:
    """The org policy from parsed TOML; `file` names it in problems.

    Raises:
        PolicyFileError: every problem found.
    """
    problems = Problems(file)
    root = Table(data, "", problems, _TOP)
    aws = _aws(root.table("aws", _AWS) or Table({}, "aws", problems, _AWS))
    defaults_table = root.table("defaults", _DEFAULTS) or Table({}, "defaults", problems, ())
    defaults = _limits(defaults_table, _BUILTIN_LIMITS, aws.role_max_session_s)
    default_ttl = defaults_table.duration("ttl", low=60, high=7 * _DAY) or 2 * 3600
    if default_ttl > defaults.max_ttl_s:
        defaults_table.problem("ttl", "is longer than max_ttl")
    groups = _groups(root.table("groups"))
    rules = tuple(
        _rule(i, t, defaults=defaults, groups=groups, catalog=catalog, aws=aws)
        for i, t in enumerate(root.tables("rules", _RULE))
    )
    use_rules = tuple(
        _use_rule(i, t, groups=groups, catalog=catalog, aws=aws)
        for i, t in enumerate(root.tables("use", _USE))
    )
    if use_rules and not aws.people_role_arn:
        root.problem(
            "use",
            "people's own credentials need a role of their own: set [aws] people_role_name"
            " (or people_role_arn)",
        )
    policy = OrgPolicy(
        catalog=catalog,
        aws=aws,
        require_user_verification=root.boolean("require_user_verification", True),
        default_ttl_s=default_ttl,
        admins=frozenset(_emails(root, "admins")),
        groups=groups,
        rules=rules,
        use_rules=use_rules,
    )
    problems.raise_if_any()
    return policy


def _aws(table: Table) -> AwsAccount:
    account = table.string("account_id", required=True, pattern="[0-9]{12}") or ""
    region = table.string("region", required=True, pattern=REGION) or ""
    role_arn = table.string("role_arn", pattern=_ROLE_ARN)
    role_name = table.string("role_name", pattern=r"[\w+=,.@-]{1,64}")
    if ("role_arn" in table.data) == ("role_name" in table.data):
        table.problem("role_arn", "give exactly one of role_arn or role_name")
    if role_arn and account and role_arn.split(":")[4] != account:
        table.problem("role_arn", f"is in account {role_arn.split(':')[4]}, not {account}")
    if role_name and account:
        role_arn = f"arn:aws:iam::{account}:role/{role_name}"
    people_arn = _people_role(table, account)
    if people_arn and people_arn == role_arn:
        table.problem(
            "people_role_name" if "people_role_name" in table.data else "people_role_arn",
            "is the agents role: people's own credentials need a role of their own",
        )
    return AwsAccount(
        account_id=account,
        region=region,
        role_arn=role_arn or "",
        role_max_session_s=table.duration("role_max_session", low=3600, high=12 * 3600) or 3600,
        sts_audience=table.string("sts_audience", pattern=r"[!-~]{1,256}") or "sts.amazonaws.com",
        people_role_arn=people_arn,
        people_role_max_session_s=table.duration(
            "people_role_max_session", low=3600, high=12 * 3600
        )
        or 3600,
    )


def _people_role(table: Table, account: str) -> str:
    """The people role's ARN from people_role_arn or people_role_name; "" when neither."""
    arn = table.string("people_role_arn", pattern=_ROLE_ARN)
    name = table.string("people_role_name", pattern=r"[\w+=,.@-]{1,64}")
    if "people_role_arn" in table.data and "people_role_name" in table.data:
        table.problem("people_role_arn", "give at most one of people_role_arn or people_role_name")
    if arn and account and arn.split(":")[4] != account:
        table.problem("people_role_arn", f"is in account {arn.split(':')[4]}, not {account}")
    if name and account:
        arn = f"arn:aws:iam::{account}:role/{name}"
    return arn or ""


def _limits(table: Table, inherited: Limits, role_max_session_s: int) -> Limits:
    """The limits a table sets, the rest inherited; STS duration capped by the role's max."""
    max_sts = table.duration("max_sts_duration", low=900, high=12 * 3600)
    if max_sts and max_sts > role_max_session_s:
        table.problem(
            "max_sts_duration", f"is longer than the role's max session ({role_max_session_s} s)"
        )
    rate = table.integer("exchanges_per_hour", low=1, high=100_000)
    return Limits(
        max_ttl_s=table.duration("max_ttl", low=60, high=7 * _DAY) or inherited.max_ttl_s,
        max_sts_s=min(max_sts or inherited.max_sts_s, role_max_session_s),
        max_active_delegations=table.integer("max_active_delegations", low=1, high=10_000)
        or inherited.max_active_delegations,
        exchanges_per_hour=rate if rate is not None else inherited.exchanges_per_hour,
        require_key_binding=table.boolean("require_key_binding", inherited.require_key_binding),
        max_budget=_budget(table, "max_budget") or inherited.max_budget,
        require_budget=table.boolean("require_budget", inherited.require_budget),
    )


def _budget(table: Table, key: str) -> Decimal | None:
    """An amount given as "50.00" or a number (read through its text, never as a float)."""
    if key not in table.data:
        return None
    raw = table.data[key]
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        table.problem(key, f'expected an amount like "50.00", got {raw!r}')
        return None
    try:
        return parse_budget(str(raw))
    except InvalidGrant as exc:
        table.problem(key, exc.reason)
        return None


def _emails(table: Table, key: str) -> list[str]:
    out = []
    for where, value in table.strings(key):
        try:
            out.append(normalize_email(value))
        except InvalidGrant as exc:
            table.problems.add(where, exc.reason)
    return out


def _groups(table: Table | None) -> dict[str, frozenset[str]]:
    groups: dict[str, frozenset[str]] = {}
    if table is None:
        return groups
    for name in table.data:
        if re.fullmatch(_GROUP, name) is None:
            table.problem(name, f"{name!r} is not a group name (a-z, 0-9, - and _)")
        groups[name] = frozenset(_emails(table, name))
    return groups


def _rule(
    index: int,
    table: Table,
    *,
    defaults: Limits,
    groups: dict[str, frozenset[str]],
    catalog: Catalog,
    aws: AwsAccount,
) -> Rule:
    emails, domains, named = _who(table, groups)
    return Rule(
        index=index,
        emails=emails,
        domains=domains,
        groups=named,
        models=_models(table, catalog, aws.region),
        limits=_limits(table, defaults, aws.role_max_session_s),
    )


def _who(
    table: Table, groups: dict[str, frozenset[str]]
) -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    """Whom a rule names: (emails, domains, known groups); a rule must name someone."""
    table.string("description")
    emails, domains = _people(table)
    group_names = [g for _, g in table.strings("groups")]
    for where, name in table.strings("groups"):
        if name not in groups:
            table.problems.add(where, f"unknown group {name!r}{suggest(name, groups)}")
    if not emails and not domains and not group_names:
        table.problem("people", "a rule needs people or groups")
    return frozenset(emails), frozenset(domains), tuple(g for g in group_names if g in groups)


def _use_rule(
    index: int,
    table: Table,
    *,
    groups: dict[str, frozenset[str]],
    catalog: Catalog,
    aws: AwsAccount,
) -> UseRule:
    """One [[use]] table: people (or groups), models, and the longest credential."""
    emails, domains, named = _who(table, groups)
    most = aws.people_role_max_session_s
    duration = table.duration("max_duration", low=900, high=12 * 3600)
    if duration and duration > most:
        table.problem("max_duration", f"is longer than the people role's max session ({most} s)")
    return UseRule(
        index=index,
        emails=emails,
        domains=domains,
        groups=named,
        models=_models(table, catalog, aws.region),
        max_duration_s=min(duration or most, most),
    )


def _people(table: Table) -> tuple[list[str], list[str]]:
    emails: list[str] = []
    domains: list[str] = []
    for where, value in table.strings("people"):
        if value.startswith("*@"):
            domain = value[2:].lower()
            if re.fullmatch(DOMAIN, domain) is None:
                table.problems.add(where, f"{value!r} is not *@ followed by a domain")
            domains.append(domain)
            continue
        if "*" in value or "?" in value:
            table.problems.add(where, f"{value!r}: people are exact emails or *@domain")
            continue
        try:
            emails.append(normalize_email(value))
        except InvalidGrant as exc:
            table.problems.add(where, f"{exc.reason} (people are emails or *@domain)")
    return emails, domains


def _models(table: Table, catalog: Catalog, region: str) -> frozenset[str]:
    """Canonical ids named or matched by the models list."""
    ids: set[str] = set()
    for where, name in table.strings("models", required=True):
        try:
            ids |= _model(catalog, name, region)
        except PoliciesError as exc:
            table.problems.add(where, str(exc))
    return frozenset(ids)


def _model(catalog: Catalog, name: str, region: str) -> set[str]:
    """A name must be callable from the home region; a glob takes only what is callable."""
    if not any(c in name for c in "*?["):
        canonical = catalog.resolve(name)
        if region:  # an invalid region is reported already; don't pile on
            catalog.require_callable(canonical, region)
        return {canonical}
    matched = {
        i for i in catalog.matching(name) if not region or catalog.entry(i).callable_from(region)
    }
    if not matched:
        raise CatalogError(f"{name!r} matches no catalog id callable from {region}")
    return matched
