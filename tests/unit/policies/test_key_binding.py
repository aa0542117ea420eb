"""The org policy's `require_key_binding`: globally in [defaults], or per rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import Catalog, GrantDenied, OrgPolicy, load_org_policy

pytestmark = pytest.mark.unit

POLICY = """
[aws]
account_id = "210987654321"
role_name = "agents"
region = "us-east-1"

[defaults]
require_key_binding = {default}

[[rules]]
people = ["*@corp.example"]
models = ["us.claude-haiku-4-5"]

[[rules]]
people = ["*@corp.example"]
models = ["us.claude-sonnet-4-5"]
require_key_binding = {sonnet}

[[rules]]
people = ["ops@corp.example"]
models = ["us.claude-sonnet-4-5"]
"""
REFUSED = (
    "the org policy requires binding this delegation to the agent's key"
    " (vouch delegate --bind-key, or an agent request from the SDK)"
)


def policy(catalog: Catalog, tmp_path: Path, *, default: str, sonnet: str) -> OrgPolicy:
    path = tmp_path / "org.toml"
    path.write_text(POLICY.format(default=default, sonnet=sonnet), encoding="utf-8")
    return load_org_policy(path, catalog)


def test_binding_required_by_one_rule_binds_only_its_models(
    catalog: Catalog, tmp_path: Path
) -> None:
    org = policy(catalog, tmp_path, default="false", sonnet="true")
    haiku = org.authorize("alice@corp.example", "bot", ["us.claude-haiku-4-5"], 60, bound=False)
    assert haiku.require_key_binding is False
    with pytest.raises(GrantDenied) as denied:
        org.authorize("alice@corp.example", "bot", ["us.claude-sonnet-4-5"], 60, bound=False)
    assert (denied.value.check, str(denied.value)) == ("key-binding-required", REFUSED)
    # One model that requires it makes the whole grant require it (one token carries all).
    both = ["us.claude-haiku-4-5", "us.claude-sonnet-4-5"]
    assert org.authorize("alice@corp.example", "bot", both, 60, bound=True).require_key_binding
    # The most generous rule for a model wins: ops@ has a Sonnet rule that does not bind.
    ops = org.authorize("ops@corp.example", "bot", ["us.claude-sonnet-4-5"], 60, bound=False)
    assert ops.require_key_binding is False
    # bound=None asks without deciding: the caller reads require_key_binding.
    asked = org.authorize("alice@corp.example", "bot", ["us.claude-sonnet-4-5"], 60)
    assert asked.require_key_binding is True


def test_binding_required_in_defaults_binds_every_rule_but_one_that_says_otherwise(
    catalog: Catalog, tmp_path: Path
) -> None:
    org = policy(catalog, tmp_path, default="true", sonnet="false")
    with pytest.raises(GrantDenied, match="requires binding"):
        org.authorize("alice@corp.example", "bot", ["us.claude-haiku-4-5"], 60, bound=False)
    sonnet = org.authorize("alice@corp.example", "bot", ["us.claude-sonnet-4-5"], 60, bound=False)
    assert sonnet.require_key_binding is False
    assert [r.limits.require_key_binding for r in org.rules] == [True, False, True]


def test_the_example_policy_keeps_binding_optional(example: OrgPolicy) -> None:
    assert not any(r.limits.require_key_binding for r in example.rules)
