"""The one conversion of policy errors to problems, keyed on the error's code."""

from __future__ import annotations

import pytest

from broker.errors import GrantInvalid, InvalidRequest, PolicyDenied, from_policy
from policies.errors import GrantDenied, InvalidGrant, SessionPolicyTooLarge, UnknownModel

pytestmark = pytest.mark.unit


def test_the_policy_saying_no_is_403_with_the_failed_check() -> None:
    problem = from_policy(GrantDenied("model-not-allowed", "alice may not delegate opus"))
    assert type(problem) is PolicyDenied
    assert problem.problem()["reason"] == "model-not-allowed"
    assert problem.detail == "alice may not delegate opus"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidGrant("agent", "'X' is not an agent name"), "invalid-grant"),
        (UnknownModel("claude-sonet"), "unknown-model"),
        (SessionPolicyTooLarge(3000, 2048, "name fewer models"), "session-policy-too-large"),
    ],
)
def test_malformed_input_is_400_with_the_code(error: Exception, code: str) -> None:
    assert isinstance(error, InvalidGrant | UnknownModel | SessionPolicyTooLarge)
    problem = from_policy(error)
    assert type(problem) is GrantInvalid
    assert problem.problem()["reason"] == code
    asked = from_policy(error, invalid=InvalidRequest)
    assert type(asked) is InvalidRequest and asked.status == 400


def test_a_prefix_says_where_the_refusal_came_from() -> None:
    problem = from_policy(
        GrantDenied("ttl-exceeded", "ttl 9h exceeds the 8h maximum"),
        prefix="the org policy no longer allows this grant: ",
    )
    assert (
        problem.detail
        == "the org policy no longer allows this grant: ttl 9h exceeds the 8h maximum"
    )
