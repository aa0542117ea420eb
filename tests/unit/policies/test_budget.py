"""Budgets: the amounts people write, exact units, and the org policy's max_budget and
require_budget."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from broker.errors import GrantInvalid, PolicyDenied, from_policy
from broker.grant import Grant, canonical_json
from policies import Catalog, GrantDenied, InvalidGrant, PolicyFileError, load_org_policy
from policies.budget import UNITS_PER_CURRENCY, from_units, parse_budget, plain, to_units
from policies.prices import Price, Tokens, cost

pytestmark = pytest.mark.unit

HAIKU_US = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
POLICY = """
[aws]
account_id = "123456789012"
role_name = "agents"
region = "us-east-1"
role_max_session = "1h"
sts_audience = "sts.amazonaws.com"

[defaults]
max_budget = "20.00"

[[rules]]
people = ["*@corp.example"]
models = ["us.claude-haiku-4-5"]

[[rules]]
people = ["alice@corp.example"]
models = ["us.claude-haiku-4-5", "us.claude-sonnet-4-5"]
max_budget = 50
require_budget = true
"""


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("5", Decimal(5)),
        ("5.00", Decimal("5.00")),
        (" 0.25 ", Decimal("0.25")),
        ("0.000001", Decimal("0.000001")),
        ("1000000", Decimal(1_000_000)),
    ],
)
def test_amounts_people_write(text: str, amount: Decimal) -> None:
    assert parse_budget(text) == amount


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "'0' must be more than 0 and at most 1000000"),
        ("0.00", "'0.00' must be more than 0 and at most 1000000"),
        ("1000000.01", "'1000000.01' must be more than 0 and at most 1000000"),
        ("5e2", "'5e2' is not an amount like 5 or 5.00 (at most six decimals)"),
        ("-5", "'-5' is not an amount like 5 or 5.00 (at most six decimals)"),
        ("5.0000001", "'5.0000001' is not an amount like 5 or 5.00 (at most six decimals)"),
        ("NaN", "'NaN' is not an amount like 5 or 5.00 (at most six decimals)"),
        ("$5", "'$5' is not an amount like 5 or 5.00 (at most six decimals)"),
        ("", "'' is not an amount like 5 or 5.00 (at most six decimals)"),
    ],
)
def test_what_is_not_an_amount(text: str, reason: str) -> None:
    with pytest.raises(InvalidGrant) as caught:
        parse_budget(text)
    assert (caught.value.field, caught.value.reason) == ("budget", reason)


def test_units_hold_token_costs_exactly_and_round_up_only_past_twelve_decimals() -> None:
    price = Price(input=Decimal("0.80"), output=Decimal("4.00"))
    one_token = cost(price, Tokens(input=1))
    assert one_token == Decimal("0.0000008")
    assert to_units(one_token) == 800_000 and from_units(800_000) == one_token
    assert to_units(Decimal("5.00")) == 5 * UNITS_PER_CURRENCY
    assert to_units(Decimal("1e-13")) == 1  # a cap never counts less than was spent
    assert plain(from_units(5_012_300_000_000)) == "5.0123"


def test_the_grants_canonical_json_carries_the_budget_as_written() -> None:
    grant = Grant(
        email="a@corp.example", agent="bot", models=(HAIKU_US,), ttl_s=3600, budget="5.00"
    )
    canonical = canonical_json(grant)
    assert canonical == (
        b'{"agent":"bot","budget":"5.00","email":"a@corp.example","jkt":null,"max_sts_s":null,'
        b'"models":["' + HAIKU_US.encode() + b'"],"purpose":"","rate":null,"ttl_s":3600}'
    )
    assert msgspec.json.decode(canonical, type=Grant) == grant
    unbudgeted = canonical_json(msgspec.structs.replace(grant, budget=None))
    assert b'"budget":null' in unbudgeted and unbudgeted != canonical


@pytest.fixture
def org_file(tmp_path: Path) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def test_max_budget_caps_and_require_budget_requires(org_file: Path, catalog: Catalog) -> None:
    org = load_org_policy(org_file, catalog)
    zed = org.authorize("zed@corp.example", "bot", [HAIKU_US], 3600, budget=Decimal("20.00"))
    assert (zed.max_budget, zed.require_budget) == (Decimal("20.00"), False)
    assert org.authorize("zed@corp.example", "bot", [HAIKU_US], 3600).max_budget == Decimal(20)
    with pytest.raises(GrantDenied) as over:
        org.authorize("zed@corp.example", "bot", [HAIKU_US], 3600, budget=Decimal("20.01"))
    assert (over.value.check, over.value.reason) == (
        "budget-over-max",
        "budget 20.01 exceeds the org policy's maximum of 20.00 for these models",
    )
    # Alice: Haiku by either rule (the most generous max, required only if both require);
    # Sonnet only by hers, which requires a budget: the grant takes the strictest.
    alice = org.authorize("alice@corp.example", "bot", [HAIKU_US], 3600)
    assert (alice.max_budget, alice.require_budget) == (Decimal(50), False)
    with pytest.raises(GrantDenied) as missing:
        org.authorize("alice@corp.example", "bot", [HAIKU_US, SONNET_US], 3600)
    assert (missing.value.check, missing.value.reason) == (
        "budget-required",
        "the org policy requires a budget on this delegation (vouch delegate --budget)",
    )
    both = org.authorize(
        "alice@corp.example", "bot", [HAIKU_US, SONNET_US], 3600, budget=Decimal("50")
    )
    assert (both.max_budget, both.require_budget) == (Decimal(50), True)
    # As the broker answers them: 403 policy-denied with the check as reason.
    problem = from_policy(over.value)
    assert isinstance(problem, PolicyDenied)
    assert problem.problem()["reason"] == "budget-over-max"
    invalid = from_policy(InvalidGrant("budget", "x"))
    assert isinstance(invalid, GrantInvalid) and invalid.extra == {"reason": "invalid-grant"}


def test_a_broken_max_budget_is_located(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "org.toml"
    path.write_text(
        POLICY.replace('max_budget = "20.00"', 'max_budget = "lots"').replace(
            "require_budget = true", 'require_budget = "yes"'
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyFileError) as caught:
        load_org_policy(path, catalog)
    text = str(caught.value)
    assert (
        f"{path}: defaults.max_budget: 'lots' is not an amount like 5 or 5.00 (at most six"
        " decimals)" in text
    )
    assert f"{path}: rules[1].require_budget: expected true or false, got str 'yes'" in text
