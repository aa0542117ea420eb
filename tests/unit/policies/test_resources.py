"""Properties of Resource/NotResource matching over generated ARN patterns, against a reference.

The reference reads the IAM User Guide ("Using wildcards in resource ARNs") literally, one
character at a time, and shares no code with `policies/resources.py`: `?` is one character
other than a colon; a `*` is any run of characters, colons included only when the `*` is the
last character of its segment (the next pattern character is a colon, or there is none).
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from policies import Outcome, Request, StatementRef, evaluate

pytestmark = pytest.mark.unit

ACTION = "bedrock:InvokeModel"
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# A small alphabet so that generated patterns and ARNs collide often; ":" is the separator.
LITERALS = ("a", "b", "-", "/", ".")
TOKENS = (*LITERALS, "*", "?")


def reference(pattern: str, arn: str) -> bool:
    """Whether pattern covers arn under the documented rules (case-sensitive)."""

    @functools.cache
    def match(p: int, a: int) -> bool:
        if p == len(pattern):
            return a == len(arn)
        char = pattern[p]
        if char == "*":
            spans_colons = p + 1 == len(pattern) or pattern[p + 1] == ":"
            takes_one_more = a < len(arn) and (spans_colons or arn[a] != ":")
            return match(p + 1, a) or (takes_one_more and match(p, a + 1))
        if char == "?":
            return a < len(arn) and arn[a] != ":" and match(p + 1, a + 1)
        return a < len(arn) and arn[a] == char and match(p + 1, a + 1)

    return match(0, 0)


# Half the segments end in "*", the case where a wildcard may span colons.
segments = st.tuples(st.lists(st.sampled_from(TOKENS), max_size=3), st.booleans()).map(
    lambda t: [*t[0], "*"] if t[1] else t[0]
)
patterns = st.lists(segments, min_size=1, max_size=6)
"""A pattern as its colon-separated segments, each a list of tokens."""


def text(pattern: list[list[str]]) -> str:
    return ":".join("".join(segment) for segment in pattern)


@st.composite
def instance(draw: st.DrawFn, pattern: list[list[str]], *, loose: bool = False) -> str:
    """An ARN the pattern covers: each wildcard replaced by text it may stand for.

    With loose, every wildcard may also stand for colons, as a plain glob would allow.
    """
    inside = st.text(st.sampled_from(LITERALS), max_size=3)
    across = st.lists(inside, min_size=1, max_size=3).map(":".join)
    one = st.sampled_from((*LITERALS, ":") if loose else LITERALS)
    out = []
    for segment in pattern:
        for i, token in enumerate(segment):
            if token == "?":
                out.append(draw(one))
            elif token == "*":
                out.append(draw(across if loose or i == len(segment) - 1 else inside))
            else:
                out.append(token)
        out.append(":")
    return "".join(out[:-1])


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str]:
    """(pattern, ARN): the ARN an instance of the pattern, maybe altered, or unrelated."""
    pattern = draw(patterns)
    arn = draw(
        st.one_of(
            instance(pattern),
            instance(pattern, loose=True),
            instance(pattern).map(lambda s: s + ":"),
            instance(pattern).map(lambda s: s.replace(":", "", 1)),
            st.text(st.sampled_from((*LITERALS, ":")), max_size=12),
        )
    )
    return text(pattern), arn


def outcome(arn: str, *statements: dict[str, object]) -> Outcome:
    policy = {"Version": "2012-10-17", "Statement": list(statements)}
    return evaluate(Request(ACTION, arn), [policy]).outcome


@settings(max_examples=1500, deadline=None)
@given(cases())
def test_resource_and_not_resource_match_as_documented(case: tuple[str, str]) -> None:
    pattern, arn = case
    covered = reference(pattern, arn)
    event("covered" if covered else "not covered")
    allowed_on = outcome(arn, {"Effect": "Allow", "Action": ACTION, "Resource": pattern})
    allowed_off = outcome(arn, {"Effect": "Allow", "Action": ACTION, "NotResource": pattern})
    assert allowed_on is (Outcome.ALLOW if covered else Outcome.IMPLICIT_DENY)
    assert allowed_off is (Outcome.IMPLICIT_DENY if covered else Outcome.ALLOW)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_deny_on_a_pattern_wins_over_allow_on_everything(data: st.DataObject) -> None:
    pattern = data.draw(patterns)
    arn = data.draw(instance(pattern))
    assert reference(text(pattern), arn), "the generator must produce covered ARNs"
    event("spans a colon" if arn.count(":") > text(pattern).count(":") else "within segments")
    deny = {"Sid": "Stop", "Effect": "Deny", "Action": "bedrock:*", "Resource": text(pattern)}
    request = Request(ACTION, arn)
    in_role = evaluate(request, [ALLOW_ALL, {"Statement": [deny]}])
    assert in_role.outcome is Outcome.EXPLICIT_DENY
    assert in_role.statements == (StatementRef("identity", 1, 0, "Stop"),)
    in_session = evaluate(request, [ALLOW_ALL], [{"Statement": [ALLOW_ALL["Statement"][0], deny]}])
    assert in_session.outcome is Outcome.EXPLICIT_DENY
    assert in_session.statements == (StatementRef("session", 0, 1, "Stop"),)


@pytest.mark.parametrize(
    ("pattern", "arn", "covered"),
    [
        ("arn:aws:bedrock:us-east-1:*", "arn:aws:bedrock:us-east-1::foundation-model/m:0", True),
        ("arn:aws:bedrock:*:foundation-model/*", "arn:aws:bedrock:r::foundation-model/m", True),
        ("arn:aws:bedrock:u*1:foundation-model/*", "arn:aws:bedrock:u1::foundation-model/m", False),
        ("a?b", "a:b", False),
        ("a*b", "a:b", False),
        ("a*:b", "a:x:b", True),
        ("*", "", True),
        ("a:", "a:", True),
        ("a:*", "a", False),
    ],
)
def test_the_reference_reads_the_documented_rules(pattern: str, arn: str, covered: bool) -> None:
    """The reference itself, pinned on hand-checked cases, so a property cannot pass vacuously."""
    assert reference(pattern, arn) is covered
    expected = Outcome.ALLOW if covered else Outcome.IMPLICIT_DENY
    assert outcome(arn, {"Effect": "Allow", "Action": ACTION, "Resource": pattern}) is expected
