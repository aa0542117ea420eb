"""Properties over random grants: the compiled session policy, judged by the evaluator under a
broad role policy, allows exactly the granted models' calls and nothing else in the catalog,
and nothing at all once the delegation has ended (`aws:CurrentTime`, which AWS puts in every
request's context).

The expected answer is computed here from the catalog entries alone (not from the
compiler's helpers), so a compiler bug cannot hide behind a shared mistake.
"""

from __future__ import annotations

import dataclasses
import random
import tomllib
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from policies import (
    Catalog,
    Entry,
    GrantDenied,
    ModelNotCallable,
    OrgPolicy,
    Request,
    SessionPolicyTooLarge,
    compile_session_policy,
    evaluate,
)

pytestmark = pytest.mark.unit

ACCOUNT = "123456789012"
ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}],
}
INVOKE = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
OTHER_ACTIONS = (
    "bedrock:CreateModelCustomizationJob",
    "bedrock:InvokeModelWithBidirectionalStream",
    "bedrock:GetFoundationModel",
)
REGIONS = ("us-east-1", "eu-west-1", "ap-northeast-1")
APPS = f"""
[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/team1sonnet"
source = "global.claude-sonnet-4-5"

[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/team2nova"
model = "amazon.nova-pro-v1:0"
regions = ["us-east-1", "us-west-2"]

[[application_profiles]]
arn = "arn:aws:bedrock:eu-west-1:{ACCOUNT}:application-inference-profile/team3haiku"
source = "eu.claude-haiku-4-5"
"""

END = 1_796_000_000
"""The delegation's expiry the policies are compiled with (epoch seconds)."""
BEFORE_END = END - 1

Call = tuple[str, str | None]
"""(resource ARN, bedrock:InferenceProfileArn or None): one Bedrock authorization check."""


CATALOG = Catalog.from_toml(tomllib.loads(APPS), "apps.toml", base=Catalog.builtin())


def model_arn(region: str, model_id: str) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


def calls(entry: Entry, region: str) -> set[Call]:
    """Every authorization check AWS makes when an agent invokes this entry from region."""
    if entry.kind == "foundation-model":
        return {(model_arn(region, entry.id), None)}
    profile = (
        entry.id
        if entry.id.startswith("arn:")
        else f"arn:aws:bedrock:{region}:{ACCOUNT}:inference-profile/{entry.id}"
    )
    destinations = [region, ""] if entry.regionless else list(entry.regions)
    return {(profile, None)} | {(model_arn(r, entry.model_id), profile) for r in destinations}


def universe(region: str) -> set[Call]:
    """The calls of every catalog entry callable from region, plus every bare model ARN."""
    everything: set[Call] = set()
    for entry in map(CATALOG.entry, CATALOG.ids):
        if entry.callable_from(region):
            everything |= calls(entry, region)
    models = {CATALOG.entry(i).model_id for i in CATALOG.ids}
    regions = {r for i in CATALOG.ids for r in CATALOG.entry(i).regions} | {""}
    return everything | {(model_arn(r, m), None) for m in models for r in regions}


def expected(granted: list[str], region: str, call: Call) -> bool:
    entries = [CATALOG.entry(i) for i in granted]
    if any(call in calls(e, region) for e in entries):
        return True
    # A directly granted model is allowed in the home region however it is reached.
    return any(e.kind == "foundation-model" and call[0] == model_arn(region, e.id) for e in entries)


def allowed(policy: str, action: str, call: Call, at: float = BEFORE_END) -> bool:
    context: dict[str, str | datetime] = {"aws:CurrentTime": datetime.fromtimestamp(at, UTC)}
    if call[1]:
        context["bedrock:InferenceProfileArn"] = call[1]
    return evaluate(Request(action, call[0], context), [ROLE], [policy]).allowed


def compile_or_error(granted: list[str], region: str) -> str | SessionPolicyTooLarge:
    try:
        return compile_session_policy(
            granted, CATALOG, region=region, account_id=ACCOUNT, expires_at=END
        )
    except SessionPolicyTooLarge as error:
        return error


@st.composite
def grants(draw: st.DrawFn) -> tuple[str, list[str]]:
    region = draw(st.sampled_from(REGIONS))
    choices = [i for i in CATALOG.ids if CATALOG.entry(i).callable_from(region)]
    return region, draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3, unique=True))


@settings(max_examples=40, deadline=None)
@given(grants())
def test_session_policy_allows_exactly_the_grant(grant: tuple[str, list[str]]) -> None:
    region, granted = grant
    policy = compile_or_error(granted, region)
    if isinstance(policy, SessionPolicyTooLarge):
        event("too large")
        assert policy.size > policy.limit == 2048
        return
    event(f"fits, {len(granted)} ids")
    assert len(policy) <= 2048
    assert all(ord(c) < 0x100 for c in policy)
    for call in sorted(universe(region), key=str):
        want = expected(granted, region, call)
        for action in INVOKE:
            assert allowed(policy, action, call) is want, (action, call)
    for call in set().union(*(calls(CATALOG.entry(i), region) for i in granted)):
        for action in OTHER_ACTIONS:
            assert not allowed(policy, action, call), (action, call)
        for at in (END, END + 1, END + 86_400):  # from the expiry on, not even the grant
            assert not allowed(policy, INVOKE[0], call, at), (at, call)


@settings(max_examples=40, deadline=None)
@given(grants(), st.randoms(use_true_random=False))
def test_session_policy_is_deterministic_and_order_free(
    grant: tuple[str, list[str]], rnd: random.Random
) -> None:
    region, granted = grant
    shuffled = granted * 2
    rnd.shuffle(shuffled)
    first, again = compile_or_error(granted, region), compile_or_error(shuffled, region)
    if isinstance(first, SessionPolicyTooLarge):
        assert isinstance(again, SessionPolicyTooLarge)
        assert (again.size, again.suggestion) == (first.size, first.suggestion)
    else:
        assert again == first


def test_a_profile_grant_leaves_the_bare_model_denied_everywhere() -> None:
    haiku = "anthropic.claude-haiku-4-5-20251001-v1:0"
    policy = compile_session_policy(
        [f"us.{haiku}"], CATALOG, region="us-east-1", account_id=ACCOUNT, expires_at=END
    )
    for region in ("us-east-1", "us-east-2", "us-west-2", ""):
        assert not allowed(policy, INVOKE[0], (model_arn(region, haiku), None))
        other_profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/global.{haiku}"
        assert not allowed(policy, INVOKE[0], (model_arn(region, haiku), other_profile))


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["alice@example.com", "Bob@Example.com", "eve@elsewhere.example"]),
    st.lists(st.sampled_from(CATALOG.ids), min_size=1, max_size=3),
    st.integers(min_value=1, max_value=12 * 3600),
)
def test_authorized_grants_never_exceed_the_org_policy(
    example: OrgPolicy, email: str, models: list[str], ttl: int
) -> None:
    """Invariant 3 (attenuation): whatever is authorized is within what the policy allows."""
    policy = dataclasses.replace(example, catalog=CATALOG)
    try:
        granted = policy.authorize(email, "agent", models, ttl)
    except (GrantDenied, ModelNotCallable):
        return
    assert set(granted.models) <= set(policy.models_for(email)) <= set(policy.allowed_models)
    assert granted.ttl_s == ttl <= 8 * 3600
    assert granted.max_sts_s <= policy.aws.role_max_session_s


def test_the_end_is_exact_to_the_second_and_unknown_time_allows_nothing() -> None:
    """The evaluator reads `aws:CurrentTime` in either form AWS documents, against the
    compiled ISO 8601 end; a request without it (never the case at AWS) is not allowed."""
    haiku = "anthropic.claude-haiku-4-5-20251001-v1:0"
    policy = compile_session_policy(
        [f"us.{haiku}"], CATALOG, region="us-east-1", account_id=ACCOUNT, expires_at=END
    )
    profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{haiku}"
    assert '"DateLessThan":{"aws:CurrentTime":"2026-11-30T00:53:20Z"}' in policy

    def at(when: object) -> bool:
        context = {} if when is None else {"aws:CurrentTime": when}
        return evaluate(Request(INVOKE[0], profile, context), [ROLE], [policy]).allowed

    assert at("2026-11-30T00:53:19Z") and at(END - 1) and at(str(END - 1))
    assert not at("2026-11-30T00:53:20Z") and not at(END) and not at(END + 1)
    assert not at(None)
