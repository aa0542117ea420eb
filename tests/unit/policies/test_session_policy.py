"""The session-policy compiler and the role documents, checked against exact JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policies import (
    Catalog,
    ModelNotCallable,
    OrgPolicy,
    SessionPolicyError,
    SessionPolicyTooLarge,
    UnknownModel,
    compile_session_policy,
    role_permissions_policy,
    trust_policy,
)
from policies.identity import agent_sub, person_sub
from policies.session_policy import AGENT_SUBJECTS, PEOPLE_SUBJECTS

pytestmark = pytest.mark.unit

ACCOUNT = "123456789012"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
END = 1_796_000_000  # a delegation's expiry, epoch seconds
UNTIL = {"DateLessThan": {"aws:CurrentTime": "2026-11-30T00:53:20Z"}}
STS_CHARS = {0x09, 0x0A, 0x0D, *range(0x20, 0x100)}


def without_end(document: dict[str, Any]) -> dict[str, Any]:
    """A policy with its Allow statements' end (DateLessThan) taken out."""
    for statement in document["Statement"]:
        condition = statement.pop("Condition", {})
        condition.pop("DateLessThan", None)
        if condition:
            statement["Condition"] = condition
    return document


def compiled(catalog: Catalog, *names: str, region: str = "us-east-1") -> dict[str, object]:
    ids = [catalog.resolve(n) for n in names]
    text = compile_session_policy(ids, catalog, region=region, account_id=ACCOUNT, expires_at=END)
    assert all(ord(c) in STS_CHARS for c in text)
    assert len(text) <= 2048
    assert text == json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    return json.loads(text)  # type: ignore[no-any-return]


def test_a_profile_and_a_model_compile_to_exact_compact_json(catalog: Catalog) -> None:
    text = compile_session_policy(
        ["amazon.nova-pro-v1:0", f"us.{HAIKU}"],
        catalog,
        region="us-east-1",
        account_id=ACCOUNT,
        expires_at=END,
    )
    profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{HAIKU}"
    expected = {
        "Statement": [
            {
                "Action": ACTIONS,
                "Condition": UNTIL,
                "Effect": "Allow",
                "Resource": [
                    profile,
                    "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
                ],
            },
            {
                "Action": ACTIONS,
                "Condition": {
                    **UNTIL,
                    "StringEquals": {"bedrock:InferenceProfileArn": [profile]},
                },
                "Effect": "Allow",
                "Resource": [
                    f"arn:aws:bedrock:{r}::foundation-model/{HAIKU}"
                    for r in ("us-east-1", "us-east-2", "us-west-2")
                ],
            },
        ],
        "Version": "2012-10-17",
    }
    assert text == json.dumps(expected, separators=(",", ":"))
    assert " " not in text
    assert "Sid" not in text


def test_output_is_deterministic_whatever_the_order_or_duplicates(catalog: Catalog) -> None:
    ids = [
        f"us.{HAIKU}",
        "amazon.nova-lite-v1:0",
        f"global.{HAIKU}",
        "meta.llama3-1-8b-instruct-v1:0",
    ]
    texts = {
        compile_session_policy(
            order, catalog, region="us-east-1", account_id=ACCOUNT, expires_at=END
        )
        for order in (ids, ids[::-1], ids + ids[:2])
    }
    assert len(texts) == 1


def test_profiles_of_one_model_share_its_conditioned_statement(catalog: Catalog) -> None:
    doc = compiled(catalog, "us.claude-haiku-4-5", "global.claude-haiku-4-5")
    statements = doc["Statement"]
    assert isinstance(statements, list)
    assert len(statements) == 2
    condition = statements[1]["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"]
    assert [a.rsplit("/", 1)[1].split(".")[0] for a in condition] == ["global", "us"]
    # The global profile adds the region-less ARN, not every commercial region.
    assert f"arn:aws:bedrock:::foundation-model/{HAIKU}" in statements[1]["Resource"]
    assert not any("eu-" in r for r in statements[1]["Resource"])


def test_a_global_profile_names_the_home_and_the_region_less_model(catalog: Catalog) -> None:
    doc = compiled(catalog, "global.claude-haiku-4-5", region="eu-west-1")
    routed = doc["Statement"][1]["Resource"]  # type: ignore[index]
    assert routed == [
        f"arn:aws:bedrock:::foundation-model/{HAIKU}",
        f"arn:aws:bedrock:eu-west-1::foundation-model/{HAIKU}",
    ]


def test_application_profiles_are_named_by_arn(catalog: Catalog, tmp_path: Path) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/abc123"
    path = tmp_path / "extra.toml"
    path.write_text(f'[[application_profiles]]\narn = "{arn}"\nsource = "us.claude-haiku-4-5"\n')
    extended = Catalog.load(path, base=catalog)
    doc = compiled(extended, arn)
    statements = doc["Statement"]
    assert statements[0]["Resource"] == [arn]  # type: ignore[index]
    assert statements[1]["Condition"] == {  # type: ignore[index]
        **UNTIL,
        "StringEquals": {"bedrock:InferenceProfileArn": [arn]},
    }
    assert len(statements[1]["Resource"]) == 3  # type: ignore[index]


def test_what_cannot_be_called_from_the_region_is_refused(catalog: Catalog) -> None:
    with pytest.raises(ModelNotCallable, match="only through a profile"):
        compile_session_policy(
            [HAIKU], catalog, region="us-east-1", account_id=ACCOUNT, expires_at=END
        )
    with pytest.raises(ModelNotCallable, match="not callable from eu-west-1"):
        compile_session_policy(
            [f"us.{HAIKU}"], catalog, region="eu-west-1", account_id=ACCOUNT, expires_at=END
        )
    with pytest.raises(UnknownModel):
        compile_session_policy(
            ["claude-haiku-4-5"], catalog, region="us-east-1", account_id=ACCOUNT, expires_at=END
        )


@pytest.mark.parametrize(
    ("ids", "region", "account", "message"),
    [
        ([], "us-east-1", ACCOUNT, "at least one model"),
        (["amazon.nova-pro-v1:0"], "us-east-1", "12345", "12-digit"),
        (["amazon.nova-pro-v1:0"], "US-EAST-1", ACCOUNT, "not an AWS region"),
    ],
)
def test_bad_inputs(
    catalog: Catalog, ids: list[str], region: str, account: str, message: str
) -> None:
    with pytest.raises(SessionPolicyError, match=message) as caught:
        compile_session_policy(ids, catalog, region=region, account_id=account, expires_at=END)
    assert caught.value.code == "session-policy-invalid"


def test_too_large_is_raised_before_any_call_and_says_what_to_drop(catalog: Catalog) -> None:
    names = ["eu.claude-sonnet-4-5", "eu.claude-haiku-4-5", "eu.claude-opus-4-5", "eu.nova-pro"]
    ids = [catalog.resolve(n) for n in names]
    with pytest.raises(SessionPolicyTooLarge) as caught:
        compile_session_policy(ids, catalog, region="eu-west-1", account_id=ACCOUNT, expires_at=END)
    error = caught.value
    assert error.size > error.limit == 2048
    assert error.code == "session-policy-too-large"
    assert error.suggestion.startswith("drop eu.claude-")
    assert f"policy is {error.size} characters, over the 2048 limit; drop" in str(error)
    # Dropping what it names does help, by as many characters as it says.
    dropped = catalog.resolve(error.suggestion.split()[1])
    saved = int(error.suggestion.split("(saves ")[1].split()[0])
    smaller = [i for i in ids if i != dropped]
    with pytest.raises(SessionPolicyTooLarge) as again:
        compile_session_policy(
            smaller, catalog, region="eu-west-1", account_id=ACCOUNT, expires_at=END
        )
    assert again.value.size == error.size - saved
    assert (
        len(
            compile_session_policy(
                smaller[1:], catalog, region="eu-west-1", account_id=ACCOUNT, expires_at=END
            )
        )
        <= 2048
    )


def test_the_end_costs_72_characters_plus_58_per_model_routed_through_profiles(
    catalog: Catalog,
) -> None:
    """Every Allow ends at the delegation's expiry; its price against the 2,048 characters."""
    grants = {
        "foundation model": (["amazon.nova-pro-v1:0"], "us-east-1", 72),
        "1 profile": ([f"us.{HAIKU}"], "us-east-1", 130),
        "2 profiles, 1 model": ([f"us.{HAIKU}", f"global.{HAIKU}"], "us-east-1", 130),
        "2 models": (["us.claude-haiku-4-5", "us.claude-sonnet-4-5"], "us-east-1", 188),
    }
    for name, (names, region, cost) in grants.items():
        ids = [catalog.resolve(n) for n in names]
        timed = compile_session_policy(
            ids, catalog, region=region, account_id=ACCOUNT, expires_at=END
        )
        untimed = role_permissions_policy(ids, catalog, region=region, account_id=ACCOUNT)
        assert len(timed) - len(untimed) == cost, name
        assert json.loads(untimed) == without_end(json.loads(timed)), name
        statements = json.loads(timed)["Statement"]
        assert all(s["Condition"]["DateLessThan"] == UNTIL["DateLessThan"] for s in statements)
        later = compile_session_policy(  # ISO 8601 has one width: the date changes nothing
            ids, catalog, region=region, account_id=ACCOUNT, expires_at=END + 86400 * 400
        )
        assert len(later) == len(timed), name
    # The price: two geographic EU Claude profiles fitted in 1,955 characters and no longer do.
    pair = [catalog.resolve(n) for n in ("eu.claude-sonnet-4-5", "eu.claude-haiku-4-5")]
    with pytest.raises(SessionPolicyTooLarge) as caught:
        compile_session_policy(
            pair, catalog, region="eu-west-1", account_id=ACCOUNT, expires_at=END
        )
    assert caught.value.size == 1_955 + 188


def test_one_model_that_alone_is_too_large(catalog: Catalog, tmp_path: Path) -> None:
    regions = ", ".join(f'"us-test-{n}"' for n in range(1, 30))
    path = tmp_path / "wide.toml"
    path.write_text(
        f'[geographies.wide]\nregions = ["us-east-1", {regions}]\n'
        '[[models]]\nid = "acme.m-v1"\nprofiles = ["wide"]\n'
    )
    wide = Catalog.load(path, base=catalog)
    with pytest.raises(SessionPolicyTooLarge, match="even this one model does not fit"):
        compile_session_policy(
            ["wide.acme.m-v1"], wide, region="us-east-1", account_id=ACCOUNT, expires_at=END
        )


def test_role_permissions_cover_everything_the_org_allows(
    catalog: Catalog, example: OrgPolicy
) -> None:
    text = role_permissions_policy(
        example.allowed_models,
        catalog,
        region=example.aws.region,
        account_id=example.aws.account_id,
    )
    session = compile_session_policy(
        example.allowed_models, catalog, region="us-east-1", account_id=ACCOUNT, expires_at=END
    )
    assert json.loads(text) == without_end(json.loads(session))  # the role's has no end
    everything = [i for i in catalog.ids if catalog.entry(i).callable_from("us-east-1")]
    with pytest.raises(SessionPolicyTooLarge) as caught:
        role_permissions_policy(everything, catalog, region="us-east-1", account_id=ACCOUNT)
    assert caught.value.limit == 6144


def test_trust_policy_for_the_broker_oidc_provider() -> None:
    text = trust_policy(
        issuer="https://vouch.example.com/tenant/", account_id=ACCOUNT, audience="sts.amazonaws.com"
    )
    provider = "vouch.example.com/tenant"
    assert json.loads(text) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{provider}"},
                "Action": [
                    "sts:AssumeRoleWithWebIdentity",
                    "sts:SetSourceIdentity",
                    "sts:TagSession",
                ],
                "Condition": {
                    "StringEquals": {f"{provider}:aud": "sts.amazonaws.com"},
                    "StringLike": {f"{provider}:sub": "agent.*"},
                },
            }
        ],
    }
    assert ", " not in text
    assert ": " not in text


def test_the_people_role_trusts_only_user_subjects_and_the_agents_role_only_agent_ones() -> None:
    people = json.loads(
        trust_policy(
            issuer="https://vouch.example.com", account_id=ACCOUNT, subjects=PEOPLE_SUBJECTS
        )
    )
    agents = json.loads(trust_policy(issuer="https://vouch.example.com", account_id=ACCOUNT))
    [person] = people["Statement"]
    [agent] = agents["Statement"]
    assert person["Condition"]["StringLike"] == {"vouch.example.com:sub": "user.*"}
    assert agent["Condition"]["StringLike"] == {"vouch.example.com:sub": "agent.*"}
    # Everything else is the same: one provider, one audience, the same three actions.
    person["Condition"].pop("StringLike")
    agent["Condition"].pop("StringLike")
    assert person == agent
    # No sub the broker makes for one kind can match the other's pattern.
    assert not person_sub("alice@example.com").startswith(AGENT_SUBJECTS[:-1])
    assert not agent_sub("user", "alice@example.com").startswith(PEOPLE_SUBJECTS[:-1])


@pytest.mark.parametrize(
    ("issuer", "account"),
    [
        ("http://vouch.example.com", ACCOUNT),
        ("https://vouch.example.com:8443", ACCOUNT),
        ("https://vouch.example.com?x=1", ACCOUNT),
        ("https://vouch.example.com#f", ACCOUNT),
        ("https:///path", ACCOUNT),
        ("https://vouch.example.com", "acct"),
    ],
)
def test_trust_policy_rejects_what_iam_would(issuer: str, account: str) -> None:
    with pytest.raises(SessionPolicyError):
        trust_policy(issuer=issuer, account_id=account)


def test_trust_policy_admits_local_http_only_when_asked() -> None:
    """For the local STS emulator only: IAM itself never accepts such a provider."""
    text = trust_policy(issuer="http://localhost:8080/", account_id=ACCOUNT, allow_local_http=True)
    statement = json.loads(text)["Statement"][0]
    assert statement["Principal"]["Federated"].endswith(":oidc-provider/localhost:8080")
    assert statement["Condition"]["StringLike"] == {"localhost:8080:sub": "agent.*"}
    with pytest.raises(SessionPolicyError):
        trust_policy(issuer="http://localhost:8080", account_id=ACCOUNT)
    with pytest.raises(SessionPolicyError):
        trust_policy(issuer="http://example.com", account_id=ACCOUNT, allow_local_http=True)
