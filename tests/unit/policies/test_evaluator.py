"""The IAM evaluator against AWS's documented evaluation logic, one case per rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from policies import EvaluationError, Outcome, Request, StatementRef, evaluate

pytestmark = pytest.mark.unit

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
INVOKE = "bedrock:InvokeModel"
NOVA = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
HAIKU_E2 = f"arn:aws:bedrock:us-east-2::foundation-model/{HAIKU}"
PROFILE = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU}"


def policy(*statements: object) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def outcome(
    statement: dict[str, Any],
    context: dict[str, Any] | None = None,
    action: str = INVOKE,
    resource: str = NOVA,
) -> Outcome:
    return evaluate(Request(action, resource, context or {}), [policy(statement)]).outcome


A, D, N = Outcome.ALLOW, Outcome.EXPLICIT_DENY, Outcome.IMPLICIT_DENY


def test_explicit_deny_wins_over_allow_and_names_the_statement() -> None:
    decision = evaluate(
        Request(INVOKE, NOVA), [ALLOW_ALL, policy(allow(), {**deny(), "Sid": "Stop"})]
    )
    assert decision.outcome is D
    assert decision.statements == (StatementRef("identity", 1, 1, "Stop"),)
    assert "identity policy 1 statement 1 (Stop)" in decision.reason


def test_no_policies_is_an_implicit_deny() -> None:
    decision = evaluate(Request(INVOKE, NOVA), [])
    assert decision.outcome is N
    assert decision.statements == ()
    assert not decision.allowed


def test_session_policy_must_allow_too_and_its_deny_counts() -> None:
    request = Request(INVOKE, NOVA)
    assert evaluate(request, [ALLOW_ALL], [policy(allow(INVOKE, NOVA))]).allowed
    narrowed = evaluate(request, [ALLOW_ALL], [policy(allow(INVOKE, HAIKU_E2))])
    assert narrowed.outcome is N
    assert "session policy 0" in narrowed.reason
    assert evaluate(request, [ALLOW_ALL], [policy(allow(), deny(INVOKE))]).outcome is D
    # Every session policy must allow it, not just one.
    both = evaluate(request, [ALLOW_ALL], [policy(allow()), policy(allow(INVOKE, HAIKU_E2))])
    assert both.outcome is N
    assert "session policy 1" in both.reason


def test_session_policy_cannot_grant_what_the_identity_lacks() -> None:
    decision = evaluate(Request(INVOKE, NOVA), [policy(allow("s3:*"))], [policy(allow())])
    assert decision.outcome is N
    assert "identity" in decision.reason


def test_allow_reports_identity_and_session_statements() -> None:
    decision = evaluate(
        Request(INVOKE, NOVA), [ALLOW_ALL], [json.dumps(policy(deny("s3:*"), allow()))]
    )
    assert decision.statements == (StatementRef("identity", 0, 0), StatementRef("session", 0, 1))
    assert str(decision.statements[1]) == "session policy 0 statement 1"


@pytest.mark.parametrize(
    ("statement", "action", "resource", "expected"),
    [
        (allow("bedrock:InvokeModel"), INVOKE, NOVA, A),
        (allow("BEDROCK:invokemodel"), INVOKE, NOVA, A),  # actions are case-insensitive
        (allow("bedrock:Invoke*"), "bedrock:InvokeModelWithResponseStream", NOVA, A),
        (allow("bedrock:InvokeModel"), "bedrock:InvokeModelWithResponseStream", NOVA, N),
        (allow("bedrock:InvokeMode?"), INVOKE, NOVA, A),
        (allow("bedrock:Invoke.odel"), INVOKE, NOVA, N),  # "." is literal, not a regex
        (allow(["s3:GetObject", "bedrock:*"]), INVOKE, NOVA, A),
        (
            {
                "Effect": "Allow",
                "NotAction": "bedrock:CreateModelCustomizationJob",
                "Resource": "*",
            },
            INVOKE,
            NOVA,
            A,
        ),
        ({"Effect": "Allow", "NotAction": ["bedrock:Invoke*"], "Resource": "*"}, INVOKE, NOVA, N),
        (allow(resource=NOVA), INVOKE, NOVA, A),
        (allow(resource=NOVA.upper()), INVOKE, NOVA, N),  # ARNs are case-sensitive
        (allow(resource="arn:aws:bedrock:*::foundation-model/amazon.*"), INVOKE, NOVA, A),
        (allow(resource="arn:aws:bedrock:*::foundation-model/amazon.*"), INVOKE, HAIKU_E2, N),
        (allow(resource="arn:aws:bedrock:us-east-?::foundation-model/*"), INVOKE, HAIKU_E2, A),
        (
            allow(resource="arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1.0"),
            INVOKE,
            NOVA,
            N,
        ),
        # A "*" ending a segment reaches across the colons after it (here "us-east-1:" and
        # the empty account); a "*" inside a segment and every "?" stay in their segment.
        (allow(resource="arn:aws:bedrock:*:foundation-model/*"), INVOKE, NOVA, A),
        (allow(resource="arn:aws:bedrock:*"), INVOKE, NOVA, A),
        (allow(resource="arn:aws:bedrock:us-east-1:*"), INVOKE, HAIKU_E2, N),
        (allow(resource="arn:aws:bedrock:u*1:foundation-model/*"), INVOKE, NOVA, N),
        (allow(resource="arn:aws:bedrock:us-east-1?:foundation-model/*"), INVOKE, NOVA, N),
        (allow(resource=NOVA.replace("v1:0", "v1:*")), INVOKE, NOVA, A),
        (allow(resource=NOVA.replace("-v1:0", "*0")), INVOKE, NOVA, N),
        (allow(resource="arn:aws:bedrock:::foundation-model/*"), INVOKE, NOVA, N),
        (
            allow(resource="arn:aws:bedrock:*::foundation-model/*"),
            INVOKE,
            NOVA.replace("us-east-1", ""),
            A,
        ),
        ({"Effect": "Allow", "Action": "*", "NotResource": NOVA}, INVOKE, NOVA, N),
        ({"Effect": "Allow", "Action": "*", "NotResource": [HAIKU_E2]}, INVOKE, NOVA, A),
        (
            {"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:*:us-east-1:*"},
            INVOKE,
            NOVA,
            N,
        ),
        (
            {"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:*:us-east-1:*"},
            INVOKE,
            HAIKU_E2,
            A,
        ),
        ({"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:bedrock:us-*"}, INVOKE, NOVA, A),
        (
            {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:bedrock:eu-*"},
            INVOKE,
            NOVA,
            D,
        ),
        ({"Effect": "Deny", "NotAction": "bedrock:Get*", "Resource": "*"}, INVOKE, NOVA, D),
    ],
)
def test_action_and_resource_matching(
    statement: dict[str, Any], action: str, resource: str, expected: Outcome
) -> None:
    identity = (
        [policy(statement)] if statement["Effect"] == "Allow" else [ALLOW_ALL, policy(statement)]
    )
    assert evaluate(Request(action, resource), identity).outcome is expected


def test_deny_whose_segment_final_star_spans_colons_wins_over_allow() -> None:
    """A `*` ending an ARN segment matches across the colons that follow (IAM User Guide,
    "Using wildcards in resource ARNs"): this Deny covers every us-east-1 Bedrock resource."""
    role = policy(
        allow("bedrock:*"),
        {**deny("bedrock:InvokeModel*", "arn:aws:bedrock:us-east-1:*"), "Sid": "NoUsEast1"},
    )
    decision = evaluate(Request(INVOKE, NOVA), [role])
    assert decision.outcome is D
    assert decision.statements == (StatementRef("identity", 0, 1, "NoUsEast1"),)
    # The same Deny leaves another region's model to the Allow.
    assert evaluate(Request(INVOKE, HAIKU_E2), [role]).allowed


def test_statement_may_be_a_single_object() -> None:
    assert evaluate(Request(INVOKE, NOVA), [{"Statement": allow()}]).allowed


NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        # String operators; keys are case-insensitive, values are not (except IgnoreCase).
        ({"StringEquals": {"aws:PrincipalTag/team": "ml"}}, {"aws:principaltag/TEAM": "ml"}, A),
        ({"StringEquals": {"aws:PrincipalTag/team": "ml"}}, {"aws:PrincipalTag/team": "ML"}, N),
        (
            {"StringEquals": {"aws:PrincipalTag/team": ["ops", "ml"]}},
            {"aws:PrincipalTag/team": "ml"},
            A,
        ),
        ({"StringEqualsIgnoreCase": {"k": "ML"}}, {"k": "ml"}, A),
        ({"StringNotEqualsIgnoreCase": {"k": "ML"}}, {"k": "ml"}, N),
        ({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "c"}, A),
        ({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "b"}, N),
        ({"StringLike": {"k": "agent.*"}}, {"k": "agent.bot.alice@example.com"}, A),
        ({"StringLike": {"k": "agent.?"}}, {"k": "agent.ab"}, N),
        ({"StringLike": {"k": "a+b"}}, {"k": "aab"}, N),  # regex characters are literal
        ({"StringNotLike": {"k": "agent.*"}}, {"k": "human"}, A),
        ({"StringEquals": {"k": "true"}}, {"k": True}, A),
        ({"StringEquals": {"k": 5}}, {"k": 5}, A),
        # Multiple keys and multiple operators must all hold.
        ({"StringEquals": {"a": "1", "b": "2"}}, {"a": "1", "b": "2"}, A),
        ({"StringEquals": {"a": "1", "b": "2"}}, {"a": "1", "b": "3"}, N),
        ({"StringEquals": {"a": "1"}, "StringLike": {"b": "x*"}}, {"a": "1", "b": "y"}, N),
        # A missing key: positive operators fail, negated ones hold, IfExists holds.
        ({"StringEquals": {"k": "x"}}, {}, N),
        ({"StringNotEquals": {"k": "x"}}, {}, A),
        ({"ArnNotLike": {"k": "arn:*"}}, {}, A),
        ({"StringEqualsIfExists": {"k": "x"}}, {}, A),
        ({"StringEqualsIfExists": {"k": "x"}}, {"k": "y"}, N),
        ({"StringNotEqualsIfExists": {"k": "x"}}, {"k": "x"}, N),
        # Null tests presence only.
        ({"Null": {"k": "true"}}, {}, A),
        ({"Null": {"k": "true"}}, {"k": "v"}, N),
        ({"Null": {"k": False}}, {"k": "v"}, A),
        ({"Null": {"k": "false"}}, {}, N),
        ({"Null": {"k": "false"}}, {"k": []}, N),  # an empty set counts as absent
        # Set operators over multivalued keys.
        ({"ForAnyValue:StringEquals": {"k": ["a", "b"]}}, {"k": ["x", "b"]}, A),
        ({"ForAnyValue:StringEquals": {"k": ["a", "b"]}}, {"k": ["x", "y"]}, N),
        ({"ForAnyValue:StringEquals": {"k": "a"}}, {}, N),
        ({"ForAnyValue:StringEquals": {"k": "a"}}, {"k": []}, N),
        ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ["a", "b"]}, A),
        ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ["a", "c"]}, N),
        ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {}, A),  # vacuously true
        ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ()}, A),
        ({"ForAnyValue:StringNotEquals": {"k": ["a"]}}, {"k": ["a", "b"]}, A),
        ({"ForAllValues:StringNotEquals": {"k": ["a"]}}, {"k": ["a", "b"]}, N),
        ({"ForAllValues:StringLike": {"k": "team-*"}}, {"k": ("team-a", "team-b")}, A),
        ({"ForAnyValue:StringEqualsIfExists": {"k": "a"}}, {}, A),
        # ARN operators: six parts each matched on their own; ArnEquals takes wildcards too.
        (
            {"ArnEquals": {"bedrock:InferenceProfileArn": PROFILE}},
            {"bedrock:InferenceProfileArn": PROFILE},
            A,
        ),
        (
            {"ArnLike": {"k": "arn:aws:bedrock:*:123456789012:inference-profile/us.*"}},
            {"k": PROFILE},
            A,
        ),
        ({"ArnEquals": {"k": "arn:aws:bedrock:*:*:inference-profile/eu.*"}}, {"k": PROFILE}, N),
        ({"ArnNotEquals": {"k": PROFILE}}, {"k": PROFILE}, N),
        ({"ArnNotLike": {"k": "arn:aws:bedrock:*:*:inference-profile/eu.*"}}, {"k": PROFILE}, A),
        ({"ArnLike": {"k": "arn:aws:bedrock:*"}}, {"k": PROFILE}, N),  # not a whole ARN pattern
        # Unlike a Resource pattern (test_action_and_resource_matching), no "*" spans a colon.
        ({"ArnLike": {"k": "arn:aws:bedrock:us-east-1:*"}}, {"k": NOVA}, N),
        ({"ArnEquals": {"k": "arn:aws:bedrock:*:foundation-model/*"}}, {"k": NOVA}, N),
        ({"ArnLike": {"k": "*"}}, {"k": PROFILE}, A),
        (
            {"ArnLike": {"k": "not-an-arn-*"}},
            {"k": "not-an-arn-at-all"},
            A,
        ),  # plain strings glob whole
        ({"ArnLike": {"k": "not-an-arn-*"}}, {"k": PROFILE}, N),
        # Dates: ISO-8601 or epoch seconds, on either side.
        (
            {"DateLessThan": {"aws:CurrentTime": "2026-06-01T00:00:00Z"}},
            {"aws:CurrentTime": NOW},
            A,
        ),
        (
            {"DateGreaterThan": {"aws:CurrentTime": "2026-06-01T00:00:00Z"}},
            {"aws:CurrentTime": NOW},
            N,
        ),
        ({"DateGreaterThan": {"aws:CurrentTime": 1_700_000_000}}, {"aws:CurrentTime": NOW}, A),
        (
            {"DateLessThan": {"aws:CurrentTime": "1700000000"}},
            {"aws:CurrentTime": "2026-01-01T12:00:00+00:00"},
            N,
        ),
        ({"DateEquals": {"t": "2026-01-01T12:00:00"}}, {"t": NOW.timestamp()}, A),
        ({"DateNotEquals": {"t": "2026-01-01T12:00:00Z"}}, {"t": NOW}, N),
        ({"DateLessThanEquals": {"t": "2026-01-01T12:00:00Z"}}, {"t": datetime(2026, 1, 1, 12)}, A),
        ({"DateGreaterThanEquals": {"t": "2026-01-01T12:00:00Z"}}, {"t": int(NOW.timestamp())}, A),
        # Numbers and booleans.
        ({"NumericLessThan": {"n": 10}}, {"n": 9}, A),
        ({"NumericLessThan": {"n": "10"}}, {"n": "10"}, N),
        ({"NumericLessThanEquals": {"n": "10"}}, {"n": 10.0}, A),
        ({"NumericGreaterThan": {"n": "1.5"}}, {"n": 2}, A),
        ({"NumericGreaterThanEquals": {"n": 3}}, {"n": 2}, N),
        ({"NumericEquals": {"n": ["1", "2"]}}, {"n": 2}, A),
        ({"NumericNotEquals": {"n": "2"}}, {"n": 2}, N),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, A),
        ({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "False"}, N),
        ({"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}, {}, A),
    ],
)
def test_condition_operators(
    condition: dict[str, Any], context: dict[str, Any], expected: Outcome
) -> None:
    assert outcome(allow(Condition=condition), context) is expected


def test_revoke_older_sessions_pattern() -> None:
    """The console's "revoke active sessions": Deny * for tokens issued before a cut-off."""
    revoke = policy(
        deny(Condition={"DateLessThan": {"aws:TokenIssueTime": "2026-01-01T12:00:00Z"}})
    )
    before = Request(INVOKE, NOVA, {"aws:TokenIssueTime": "2026-01-01T11:59:59Z"})
    after = Request(
        INVOKE, NOVA, {"aws:TokenIssueTime": datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)}
    )
    assert evaluate(before, [ALLOW_ALL, revoke]).outcome is D
    assert evaluate(after, [ALLOW_ALL, revoke]).allowed
    # Without the key the DateLessThan deny does not apply: the request is judged on its allows.
    assert evaluate(Request(INVOKE, NOVA), [ALLOW_ALL, revoke]).allowed


def test_per_delegation_revocation_by_principal_tag() -> None:
    revoke = policy(
        deny(Condition={"StringEquals": {"aws:PrincipalTag/vouch:Delegation": ["d-1", "d-2"]}})
    )
    assert (
        evaluate(
            Request(INVOKE, NOVA, {"aws:PrincipalTag/vouch:Delegation": "d-2"}), [ALLOW_ALL, revoke]
        ).outcome
        is D
    )
    assert evaluate(
        Request(INVOKE, NOVA, {"aws:PrincipalTag/vouch:Delegation": "d-3"}), [ALLOW_ALL, revoke]
    ).allowed


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (policy(allow(Condition={"StringEqualsFuzzy": {"k": "v"}})), "unknown condition operator"),
        (
            policy(allow(Condition={"ForSomeValues:StringEquals": {"k": "v"}})),
            "unknown set operator",
        ),
        (policy(allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})), "not supported"),
        (policy(allow(Condition={"NullIfExists": {"k": "true"}})), "Null takes"),
        (policy(allow(Condition={"StringEquals": {"k": []}})), "no values"),
        (policy(allow(Condition={"StringEquals": "k"})), "expected an object of condition keys"),
        (policy(allow(Condition=["StringEquals"])), "Condition must be an object"),
        (
            policy(allow(Condition={"DateLessThan": {"k": "yesterday"}})),
            "not a valid DateLessThan value",
        ),
        (
            policy(allow(Condition={"NumericLessThan": {"k": "ten"}})),
            "not a valid NumericLessThan value",
        ),
        (policy(allow(Condition={"DateLessThan": {"k": True}})), "not a valid DateLessThan"),
        (policy(allow(Condition={"Bool": {"k": "yes"}})), "not a valid Bool value"),
        (
            policy(allow(Condition={"StringEquals": {"k": {"nested": 1}}})),
            "not a valid StringEquals",
        ),
        (policy(allow(resource="arn:aws:s3:::${aws:username}/*")), "policy variables"),
        (policy(allow(Condition={"StringLike": {"k": "${aws:username}"}})), "policy variables"),
        (policy(allow(Principal="*")), "unsupported element"),
        (policy({"Effect": "Permit", "Action": "*", "Resource": "*"}), "Effect"),
        (policy({"Effect": "Allow", "Resource": "*"}), "exactly one of Action or NotAction"),
        (
            policy({"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"}),
            "exactly one",
        ),
        (policy({"Effect": "Allow", "Action": "*"}), "exactly one of Resource or NotResource"),
        (policy(allow(action=[])), "expected a string or a list of strings"),
        (policy(allow(resource=[1])), "expected a string or a list of strings"),
        (policy("not a statement"), "expected an object"),
        ({"Version": "2012-10-17"}, "expected an object with a Statement"),
        ({"Version": "2020-01-01", "Statement": []}, "unknown Version"),
        ("{not json", "not JSON"),
    ],
)
def test_policies_it_cannot_judge_exactly_raise(document: Any, message: str) -> None:
    with pytest.raises(EvaluationError, match=message) as caught:
        evaluate(Request(INVOKE, NOVA), [document])
    assert caught.value.code == "policy-evaluation-error"


def test_errors_are_raised_even_when_another_statement_decides_first() -> None:
    """Parsing checks the whole policy before judging, so order never hides a bad operator."""
    bad = policy(deny(), allow(Condition={"Nope": {"k": "v"}}))
    with pytest.raises(EvaluationError, match=r"identity policy 0\.Statement\[1\]\.Condition"):
        evaluate(Request(INVOKE, NOVA), [bad])


@pytest.mark.parametrize(
    ("condition", "context", "message"),
    [
        ({"StringEquals": {"k": "a"}}, {"k": ["a", "b"]}, "use ForAnyValue: or ForAllValues:"),
        (
            {"DateLessThan": {"k": "2026-01-01T00:00:00Z"}},
            {"k": "not a date"},
            "not usable with DateLessThan",
        ),
        ({"NumericLessThan": {"k": 1}}, {"k": True}, "not usable"),
        ({"StringEquals": {"k": "a"}}, {"k": NOW}, "not usable"),
        ({"StringEquals": {"k": "a"}}, {"k": "a", "K": "b"}, "repeats a key"),
    ],
)
def test_request_contexts_it_cannot_compare_raise(
    condition: dict[str, Any], context: dict[str, Any], message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        outcome(allow(Condition=condition), context)
