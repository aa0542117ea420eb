"""The org policy: the example file, grant decisions, and validation of broken files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policies import (
    AwsAccount,
    Catalog,
    GrantDenied,
    InvalidGrant,
    ModelNotCallable,
    OrgPolicy,
    PolicyFileError,
    SelfUse,
    UnknownModel,
    load_org_policy,
    normalize_email,
)

pytestmark = pytest.mark.unit

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
HAIKU_US = f"us.{HAIKU}"
HAIKU_ROUTES = "use one of: us.claude-haiku-4-5, global.claude-haiku-4-5"
AWS = "[aws]\naccount_id = '123456789012'\n"
SONNET_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
H = 3600

POLICY = """
admins = ["Admin@Example.com", "root@corp.example"]
require_user_verification = false

[aws]
account_id = "210987654321"
role_name = "agents"
region = "us-east-1"
role_max_session = "4h"
sts_audience = "vouch-sts"

[defaults]
ttl = "1h"
max_ttl = "2h"
max_sts_duration = 1800
max_active_delegations = 5
exchanges_per_hour = 60

[groups]
ml-team = ["alice@corp.example", "bob@corp.example"]
oncall = ["carol@corp.example"]

[[rules]]
description = "everyone: small models"
people = ["*@corp.example"]
models = ["nova-micro", "us.claude-haiku-4-5"]

[[rules]]
groups = ["ml-team"]
models = ["us.anthropic.claude-*-4-5-*", "nova-pro"]
max_ttl = "8h"
max_sts_duration = "2h"
exchanges_per_hour = 600
max_active_delegations = 20

[[rules]]
people = ["dave@corp.example"]
groups = ["oncall"]
models = ["us.claude-haiku-4-5"]
max_ttl = "1d"
"""


@pytest.fixture
def org(catalog: Catalog, tmp_path: Path) -> OrgPolicy:
    path = tmp_path / "org.toml"
    path.write_text(POLICY, encoding="utf-8")
    return load_org_policy(path, catalog)


def test_the_example_policy(example: OrgPolicy) -> None:
    assert example.aws == AwsAccount(
        account_id="123456789012",
        role_arn="arn:aws:iam::123456789012:role/vouch-agents",
        region="us-east-1",
        sts_audience="sts.amazonaws.com",
        role_max_session_s=H,
        people_role_arn="arn:aws:iam::123456789012:role/vouch-people",
        people_role_max_session_s=H,
    )
    assert example.require_user_verification
    assert example.default_ttl_s == 2 * H
    assert example.allowed_models == (HAIKU_US, SONNET_US)
    assert example.max_token_lifetime_s == 8 * H
    assert example.is_admin("admin@example.com")
    assert not example.is_admin("alice@example.com")
    granted = example.authorize(
        "alice@example.com", "research-bot", ["us.claude-sonnet-4-5", HAIKU_US], 8 * H
    )
    assert granted.models == (HAIKU_US, SONNET_US)
    assert (granted.max_sts_s, granted.exchanges_per_hour, granted.max_active_delegations) == (
        H,
        None,
        10,
    )
    # What everyone at example.com may use themselves: the same two models, for 1 h.
    assert example.use_models == (HAIKU_US, SONNET_US)
    assert example.authorize_use("Alice@Example.com") == SelfUse(
        email="alice@example.com", models=(HAIKU_US, SONNET_US), max_duration_s=H
    )
    assert example.use_limits("bob@partner.example") == {}


def test_the_file_settings(org: OrgPolicy) -> None:
    assert org.aws == AwsAccount(  # role_name is completed to the role's ARN in the account
        account_id="210987654321",
        role_arn="arn:aws:iam::210987654321:role/agents",
        region="us-east-1",
        sts_audience="vouch-sts",
        role_max_session_s=4 * H,
    )
    assert not org.require_user_verification
    assert org.default_ttl_s == H
    assert org.admins == {"admin@example.com", "root@corp.example"}
    assert org.max_token_lifetime_s == 24 * H
    assert org.models_for("zed@corp.example") == ("amazon.nova-micro-v1:0", HAIKU_US)
    assert "us.anthropic.claude-opus-4-5-20251101-v1:0" in org.models_for("alice@corp.example")
    assert "amazon.nova-pro-v1:0" in org.allowed_models


@pytest.mark.parametrize(
    ("email", "models", "ttl", "expected"),
    [
        # Domain glob, defaults inherited.
        (
            "zed@corp.example",
            ["nova-micro"],
            H,
            {"max_sts_s": 1800, "exchanges_per_hour": 60, "max_active_delegations": 5},
        ),
        # Group membership gives the ML rule's more generous limits.
        (
            "alice@corp.example",
            ["us.claude-opus-4-5"],
            8 * H,
            {"max_sts_s": 2 * H, "exchanges_per_hour": 600, "max_active_delegations": 20},
        ),
        # Haiku is in both rules: the most generous rule that admits the TTL counts...
        (
            "bob@corp.example",
            ["us.claude-haiku-4-5"],
            H,
            {"max_sts_s": 2 * H, "exchanges_per_hour": 600},
        ),
        # ...and across models the strictest wins (one session policy covers them all).
        (
            "bob@corp.example",
            ["us.claude-haiku-4-5", "nova-micro"],
            H,
            {"max_sts_s": 1800, "exchanges_per_hour": 60, "max_active_delegations": 5},
        ),
        # Exact email and a group both reach the 1-day rule.
        (
            "DAVE@corp.example",
            ["us.claude-haiku-4-5"],
            24 * H,
            {"email": "dave@corp.example", "ttl_s": 24 * H},
        ),
        ("carol@corp.example", [HAIKU_US], 20 * H, {"max_sts_s": 1800}),
    ],
)
def test_grants_the_policy_allows(
    org: OrgPolicy, email: str, models: list[str], ttl: int, expected: dict[str, Any]
) -> None:
    granted = org.authorize(email, "bot-1", models, ttl)
    for field, value in expected.items():
        assert getattr(granted, field) == value
    assert granted.agent == "bot-1"
    assert granted.ttl_s == ttl
    assert granted.models == tuple(sorted({org.catalog.resolve(m) for m in models}))


@pytest.mark.parametrize(
    ("email", "models", "ttl", "check", "model", "limit", "message"),
    [
        (
            "eve@elsewhere.example",
            ["nova-micro"],
            H,
            "person-not-allowed",
            None,
            None,
            "eve@elsewhere.example may not delegate any model",
        ),
        (
            "eve@sub.corp.example",
            ["nova-micro"],
            H,
            "person-not-allowed",
            None,
            None,
            "may not delegate any model",
        ),
        (
            "zed@corp.example",
            ["nova-pro"],
            H,
            "model-not-allowed",
            "amazon.nova-pro-v1:0",
            None,
            "zed@corp.example may not delegate nova-pro (amazon.nova-pro-v1:0)",
        ),
        (
            "zed@corp.example",
            ["nova-micro"],
            3 * H,
            "ttl-exceeded",
            "amazon.nova-micro-v1:0",
            2 * H,
            "ttl 3h exceeds the 2h maximum for nova-micro",
        ),
        (
            "alice@corp.example",
            ["us.claude-sonnet-4-5"],
            9 * H,
            "ttl-exceeded",
            SONNET_US,
            8 * H,
            "ttl 9h exceeds the 8h maximum for us.claude-sonnet-4-5",
        ),
        (
            "carol@corp.example",
            ["us.claude-haiku-4-5"],
            25 * H,
            "ttl-exceeded",
            HAIKU_US,
            24 * H,
            "ttl 25h exceeds the 24h maximum",
        ),
        (
            "bob@corp.example",
            ["us.claude-haiku-4-5", "nova-micro"],
            3 * H,
            "ttl-exceeded",
            "amazon.nova-micro-v1:0",
            2 * H,
            "for nova-micro",
        ),
    ],
)
def test_grants_the_policy_denies_say_exactly_why(
    org: OrgPolicy,
    email: str,
    models: list[str],
    ttl: int,
    check: str,
    model: str | None,
    limit: int | None,
    message: str,
) -> None:
    with pytest.raises(GrantDenied) as caught:
        org.authorize(email, "bot", models, ttl)
    assert (caught.value.check, caught.value.model, caught.value.limit) == (check, model, limit)
    assert message in str(caught.value)
    assert caught.value.reason == str(caught.value)
    assert caught.value.code == "grant-denied"


@pytest.mark.parametrize(
    ("email", "agent", "models", "ttl", "field"),
    [
        ("alice@corp.example", "Bot", ["nova-micro"], H, "agent"),
        ("alice@corp.example", "-bot", ["nova-micro"], H, "agent"),
        ("alice@corp.example", "a" * 33, ["nova-micro"], H, "agent"),
        ("alice@corp.example", "bot\n", ["nova-micro"], H, "agent"),
        ("alice@corp.example", "bot.x", ["nova-micro"], H, "agent"),
        ("alice@corp.example", "bot", [], H, "models"),
        ("alice@corp.example", "bot", ["nova-micro"], 0, "ttl"),
        ("alice@corp.example", "bot", ["nova-micro"], True, "ttl"),
        ("alice@corp.example", "bot", ["nova-micro"], 1.5, "ttl"),
        ("not-an-email", "bot", ["nova-micro"], H, "email"),
        ("alice@corp..example", "bot", ["nova-micro"], H, "email"),
        ("\u0430lice@corp.example", "bot", ["nova-micro"], H, "email"),  # Cyrillic a
    ],
)
def test_malformed_requests_are_invalid_grants(
    org: OrgPolicy, email: str, agent: str, models: list[str], ttl: Any, field: str
) -> None:
    with pytest.raises(InvalidGrant) as caught:
        org.authorize(email, agent, models, ttl)
    assert caught.value.field == field
    assert caught.value.code == "invalid-grant"


def test_agent_names_at_the_edges_are_accepted(org: OrgPolicy) -> None:
    for agent in ("a", "0", "a" * 32, "research-bot-2"):
        assert org.authorize("zed@corp.example", agent, ["nova-micro"], H).agent == agent


def test_unknown_and_uncallable_models(org: OrgPolicy) -> None:
    with pytest.raises(UnknownModel, match="did you mean"):
        org.authorize("alice@corp.example", "bot", ["claude-haiku-4.5"], H)
    with pytest.raises(
        ModelNotCallable, match=r"only through a profile; use one of: us\.claude-haiku-4-5$"
    ):
        org.authorize("zed@corp.example", "bot", ["claude-haiku-4-5"], H)
    with pytest.raises(
        ModelNotCallable, match=r"not callable from us-east-1; use one of: us\.claude-haiku-4-5$"
    ):
        org.authorize("zed@corp.example", "bot", ["eu.claude-haiku-4-5"], H)
    # Only routes this person may delegate are offered.
    with pytest.raises(ModelNotCallable, match=r"not callable from us-east-1$"):
        org.authorize("zed@corp.example", "bot", ["eu.claude-opus-4-5"], H)


def test_emails_compare_after_nfkc_and_case_folding(org: OrgPolicy) -> None:
    assert normalize_email("ALICE@Corp.Example") == "alice@corp.example"
    fullwidth = "\uff41lice@corp.example"  # fullwidth a folds to ASCII a under NFKC
    assert normalize_email(fullwidth) == "alice@corp.example"
    assert org.authorize(fullwidth, "bot", ["us.claude-opus-4-5"], H).email == "alice@corp.example"
    assert org.is_admin("ADMIN@example.com")
    assert not org.is_admin("\u0430dmin@example.com")
    assert not org.is_admin("admin")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(text, encoding="utf-8")
    return path


BROKEN = """
admins = ["admin@example.com", "not an email", "\u0430dmin@example.com"]
require_user_verification = "yes"
colour = "blue"

[aws]
account_id = "1234"
role_arn = "arn:aws:iam::999999999999:role/vouch-agents"
role_name = "vouch-agents"
region = "us-east-1"
role_max_session = "1h"

[defaults]
ttl = "10h"
max_ttl = "8h"
max_sts_duration = "2h"
max_active_delegations = 0
exchanges_per_hour = "many"

[groups]
ml-team = ["alice@example.com", 7]
"Bad Group" = []

[[rules]]
people = ["*@example.com", "bob@", "al*ce@example.com", "*@exa mple.com"]
groups = ["ml-tema"]
models = ["claude-sonet", "claude-haiku-4-5", "eu.claude-haiku-4-5", "us.nothing-*", "nova-pro"]
max_ttl = "forever"
max_sts_duration = 60

[[rules]]
models = ["nova-lite"]
modles = ["nova-pro"]
max_ttl = "30d"
"""


def test_every_problem_in_a_broken_policy_is_reported_with_its_location(
    catalog: Catalog, tmp_path: Path
) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_org_policy(write(tmp_path, BROKEN), catalog)
    problems = [f"{p.location}: {p.message}" for p in caught.value.problems]
    expected = [
        "admins[1]: 'not an email' is not an email address",
        "admins[2]: '\u0430dmin@example.com' has non-ASCII characters after NFKC; refused",
        "require_user_verification: expected true or false, got str 'yes'",
        "colour: unknown key",
        "aws.account_id: '1234' is not a valid account id",
        "aws.role_arn: give exactly one of role_arn or role_name",
        "defaults.ttl: is longer than max_ttl",
        "defaults.max_sts_duration: is longer than the role's max session (3600 s)",
        "defaults.max_active_delegations: 0 is outside 1..10000",
        "defaults.exchanges_per_hour: expected an integer, got str 'many'",
        "groups.ml-team[1]: expected a string, got 7",
        "groups.Bad Group: 'Bad Group' is not a group name (a-z, 0-9, - and _)",
        "rules[0].people[1]: 'bob@' is not an email address (people are emails or *@domain)",
        "rules[0].people[2]: 'al*ce@example.com': people are exact emails or *@domain",
        "rules[0].people[3]: '*@exa mple.com' is not *@ followed by a domain",
        "rules[0].groups[0]: unknown group 'ml-tema' (did you mean ml-team?)",
        'rules[0].models[0]: unknown model "claude-sonet"'
        " (did you mean claude-sonnet-4, claude-sonnet-4-6, claude-sonnet-4-5?)",
        f"rules[0].models[1]: {HAIKU} is callable only through a profile; {HAIKU_ROUTES}",
        f"rules[0].models[2]: eu.{HAIKU} is not callable from us-east-1; {HAIKU_ROUTES}",
        "rules[0].models[3]: 'us.nothing-*' matches no catalog id callable from us-east-1",
        'rules[0].max_ttl: expected seconds or a duration like "8h" or "90m", got \'forever\'',
        "rules[0].max_sts_duration: 60 (60 s) is outside 900..43200 s",
        "rules[1].modles: unknown key (did you mean models?)",
        "rules[1].people: a rule needs people or groups",
        "rules[1].max_ttl: '30d' (2592000 s) is outside 60..604800 s",
    ]
    missing = [e for e in expected if e not in problems]
    assert not missing, "\n".join(problems)
    assert len(problems) == len(expected), "\n".join(problems)
    assert f"{tmp_path / 'org.toml'}: admins[1]: 'not an email' is not an email address" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "aws.account_id: missing (expected a string)"),
        (
            "[aws]\naccount_id = '123456789012'\nregion = 'us-east-1'",
            "aws.role_arn: give exactly one",
        ),
        (
            "[aws]\naccount_id = '123456789012'\nrole_name = 'r'\nregion = 'mars'",
            "aws.region: 'mars' is not a valid region",
        ),
        # With the region unknown, models are still resolved but not judged by region.
        (
            AWS + "role_name = 'r'\nregion = 'mars'\n[[rules]]\npeople = ['a@b.example']\n"
            "models = ['claude-haiku-4-5', 'eu.*', 'nova-por']",
            'rules[0].models[2]: unknown model "nova-por"',
        ),
        (AWS + "role_name = 'r'\nregion = 'us-east-1'\nsts_audience = ''", "aws.sts_audience"),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\n[defaults]\nmax_ttl = 1.5",
            "defaults.max_ttl: expected seconds",
        ),
        (
            AWS + "role_arn = 'arn:aws:iam::123456789012:user/x'\nregion = 'us-east-1'",
            "aws.role_arn: 'arn:aws:iam::123456789012:user/x' is not a valid role arn",
        ),
        (
            "rules = 1\n[aws]\naccount_id = '123456789012'\nrole_name = 'r'\nregion = 'us-east-1'",
            "rules: expected an array of tables",
        ),
        ("aws = 1", "aws: expected a table, got int 1"),
        ("[aws\n", "not TOML"),
    ],
)
def test_small_broken_policies(catalog: Catalog, tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_org_policy(write(tmp_path, text), catalog)
    assert any(message in str(p) for p in caught.value.problems), str(caught.value)


def test_role_arn_account_must_be_the_policy_account(catalog: Catalog, tmp_path: Path) -> None:
    text = AWS + "role_arn = 'arn:aws:iam::999999999999:role/path/r'\nregion = 'us-east-1'"
    with pytest.raises(
        PolicyFileError, match=r"aws\.role_arn: is in account 999999999999, not 123456789012"
    ):
        load_org_policy(write(tmp_path, text), catalog)


def test_a_policy_without_rules_lets_nobody_delegate(catalog: Catalog, tmp_path: Path) -> None:
    text = "[aws]\naccount_id = '123456789012'\nrole_name = 'r'\nregion = 'eu-west-1'"
    policy = load_org_policy(write(tmp_path, text), catalog)
    assert policy.allowed_models == ()
    assert policy.max_token_lifetime_s == 2 * H
    assert policy.models_for("a@b.example") == ()
    with pytest.raises(GrantDenied, match="may not delegate any model"):
        policy.authorize("a@b.example", "bot", ["nova-pro"], 60)


def test_globs_only_take_what_the_home_region_can_call(catalog: Catalog, tmp_path: Path) -> None:
    text = """
[aws]
account_id = "123456789012"
role_name = "r"
region = "eu-west-1"

[[rules]]
people = ["*@example.com"]
models = ["*.anthropic.claude-haiku-4-5-*"]
"""
    policy = load_org_policy(write(tmp_path, text), catalog)
    assert policy.allowed_models == (
        "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        "global.anthropic.claude-haiku-4-5-20251001-v1:0",
    )


# --- a person's own use ([[use]]) ---------------------------------------------------------------

OPUS_US = "us.anthropic.claude-opus-4-5-20251101-v1:0"
USE_POLICY = """
[aws]
account_id = "123456789012"
role_name = "vouch-agents"
region = "us-east-1"
people_role_name = "vouch-people"
people_role_max_session = "2h"

[groups]
leads = ["lena@corp.example"]

[[rules]]
description = "everyone delegates Haiku"
people = ["*@corp.example"]
models = ["us.claude-haiku-4-5"]

[[rules]]
description = "Dan delegates Opus but may not use it himself"
people = ["dan@corp.example"]
models = ["us.claude-opus-4-5"]

[[use]]
description = "leads use Opus themselves, for 30 minutes at a time"
groups = ["leads"]
models = ["us.claude-opus-4-5"]
max_duration = "30m"

[[use]]
description = "everyone uses Haiku and Sonnet themselves (the people role's 2 h)"
people = ["*@corp.example"]
models = ["us.claude-haiku-4-5", "us.claude-sonnet-4-5"]

[[use]]
people = ["lena@corp.example"]
models = ["us.claude-haiku-4-5"]
max_duration = "1h"
"""


@pytest.fixture
def uses(catalog: Catalog, tmp_path: Path) -> OrgPolicy:
    return load_org_policy(write(tmp_path, USE_POLICY), catalog)


def test_what_a_person_may_use_is_independent_of_what_they_may_delegate(uses: OrgPolicy) -> None:
    assert uses.aws.people_role_arn == "arn:aws:iam::123456789012:role/vouch-people"
    assert uses.aws.people_role_name == "vouch-people"
    assert uses.aws.people_role_max_session_s == 2 * H
    assert uses.use_models == (HAIKU_US, OPUS_US, SONNET_US)
    assert uses.allowed_models == (HAIKU_US, OPUS_US)  # what agents may get: no Sonnet
    # Lena uses Opus herself but may not delegate it...
    assert uses.use_limits("lena@corp.example") == {
        OPUS_US: H // 2,
        HAIKU_US: 2 * H,
        SONNET_US: 2 * H,
    }
    assert OPUS_US not in uses.models_for("lena@corp.example")
    with pytest.raises(GrantDenied, match="may not delegate"):
        uses.authorize("lena@corp.example", "bot", ["us.claude-opus-4-5"], H)
    # ...and Dan delegates Opus but may not use it himself.
    assert uses.delegation_limits("dan@corp.example") == {OPUS_US: 8 * H, HAIKU_US: 8 * H}
    with pytest.raises(GrantDenied) as caught:
        uses.authorize_use("dan@corp.example", ["us.claude-opus-4-5"])
    assert (caught.value.check, caught.value.model) == ("model-not-allowed", OPUS_US)
    assert str(caught.value) == (
        f"dan@corp.example may not use us.claude-opus-4-5 ({OPUS_US}) themselves"
    )


@pytest.mark.parametrize(
    ("email", "models", "expected", "longest"),
    [
        # Everything the person may use, when nothing is named.
        ("zed@corp.example", None, (HAIKU_US, SONNET_US), 2 * H),
        # Each model's most generous rule, the strictest across the models asked for.
        ("lena@corp.example", ["us.claude-haiku-4-5"], (HAIKU_US,), 2 * H),
        ("lena@corp.example", None, (HAIKU_US, OPUS_US, SONNET_US), H // 2),
        ("LENA@corp.example", ["us.claude-opus-4-5", SONNET_US], (OPUS_US, SONNET_US), H // 2),
    ],
)
def test_a_persons_own_use_and_its_longest_credential(
    uses: OrgPolicy, email: str, models: list[str] | None, expected: tuple[str, ...], longest: int
) -> None:
    allowed = uses.authorize_use(email, models)
    assert allowed == SelfUse(email=email.lower(), models=expected, max_duration_s=longest)


def test_own_use_refusals_say_exactly_why(
    uses: OrgPolicy, catalog: Catalog, tmp_path: Path
) -> None:
    with pytest.raises(GrantDenied) as nobody:
        uses.authorize_use("eve@elsewhere.example")
    assert nobody.value.check == "person-not-allowed"
    assert str(nobody.value) == "eve@elsewhere.example may not use any model themselves"
    with pytest.raises(InvalidGrant, match="name at least one model"):
        uses.authorize_use("zed@corp.example", [])
    with pytest.raises(UnknownModel):
        uses.authorize_use("zed@corp.example", ["claude-sonet"])
    with pytest.raises(ModelNotCallable, match=r"use one of: us\.claude-haiku-4-5"):
        uses.authorize_use("zed@corp.example", [HAIKU])  # the bare model: only via a profile
    with pytest.raises(InvalidGrant, match="not an email"):
        uses.authorize_use("zed@")
    # A policy without [[use]] rules lets nobody use anything themselves.
    text = "[aws]\naccount_id = '123456789012'\nrole_name = 'r'\nregion = 'us-east-1'"
    bare = load_org_policy(write(tmp_path, text), catalog)
    assert bare.use_models == () and bare.aws.people_role_arn == ""
    assert bare.aws.people_role_name is None
    with pytest.raises(GrantDenied, match="may not use any model themselves"):
        bare.authorize_use("admin@example.com")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\n"
            "[[use]]\npeople = ['*@corp.example']\nmodels = ['us.claude-haiku-4-5']",
            "use: people's own credentials need a role of their own: set [aws]"
            " people_role_name (or people_role_arn)",
        ),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\npeople_role_name = 'r'",
            "aws.people_role_name: is the agents role: people's own credentials need a role"
            " of their own",
        ),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\npeople_role_name = 'p'\n"
            "people_role_arn = 'arn:aws:iam::123456789012:role/p'",
            "aws.people_role_arn: give at most one of people_role_arn or people_role_name",
        ),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\n"
            "people_role_arn = 'arn:aws:iam::999999999999:role/p'",
            "aws.people_role_arn: is in account 999999999999, not 123456789012",
        ),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\npeople_role_name = 'p'\n"
            "[[use]]\npeople = ['*@corp.example']\nmodels = ['us.claude-haiku-4-5']\n"
            "max_duration = '2h'",
            "use[0].max_duration: is longer than the people role's max session (3600 s)",
        ),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\npeople_role_name = 'p'\n"
            "[[use]]\nmodels = ['us.claude-haiku-4-5']\nmax_ttl = '2h'",
            "use[0].max_ttl: unknown key",
        ),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\npeople_role_name = 'p'\n"
            "[[use]]\nmodels = ['us.claude-haiku-4-5']",
            "use[0].people: a rule needs people or groups",
        ),
        (
            AWS + "role_name = 'r'\nregion = 'us-east-1'\npeople_role_name = 'p'\n"
            "[[use]]\npeople = ['*@corp.example']\nmodels = ['us.claude-haiku-4-5']\n"
            "max_duration = '5m'",
            "use[0].max_duration: '5m' (300 s) is outside 900..43200 s",
        ),
    ],
)
def test_broken_use_rules_and_people_roles(
    catalog: Catalog, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_org_policy(write(tmp_path, text), catalog)
    problems = [f"{p.location}: {p.message}" for p in caught.value.problems]
    assert message in problems, "\n".join(problems)
