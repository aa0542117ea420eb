"""One spelling per person and agent: the rules every door uses (policies/identity.py)."""

from __future__ import annotations

import pytest

from policies.errors import InvalidGrant
from policies.identity import (
    agent_sub,
    check_agent_name,
    normalize_email,
    parse_agent_sub,
    person_sub,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spelling", "normal"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@Example.COM ", "alice@example.com"),
        ("\uff41lice@example.com", "alice@example.com"),  # fullwidth a folds (NFKC)
        ("a.b+c=d_e-f@x-y.example", "a.b+c=d_e-f@x-y.example"),
    ],
)
def test_emails_fold_to_one_spelling(spelling: str, normal: str) -> None:
    assert normalize_email(spelling) == normal


@pytest.mark.parametrize(
    ("spelling", "reason"),
    [
        ("\u0430lice@example.com", "has non-ASCII characters after NFKC; refused"),  # Cyrillic
        ("not an email", "is not an email address"),
        ("bob@", "is not an email address"),
        ("o'brien@example.com", "must be a plain address of at most 64 characters"),
        ("a" * 60 + "@example.com", "must be a plain address of at most 64 characters"),
        (".alice@example.com", "must be a plain address of at most 64 characters"),
    ],
)
def test_emails_that_cannot_be_a_source_identity_are_refused(spelling: str, reason: str) -> None:
    with pytest.raises(InvalidGrant) as caught:
        normalize_email(spelling)
    assert caught.value.field == "email"
    assert reason in caught.value.reason


@pytest.mark.parametrize("name", ["a", "researcher", "r2-d2", "a" * 32])
def test_agent_names(name: str) -> None:
    assert check_agent_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "Researcher", "a.b", "a" * 33, "r\u0435s", "a b"])
def test_bad_agent_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidGrant, match="is not an agent name"):
        check_agent_name(name)


def test_agent_subs_round_trip_and_fold_the_email() -> None:
    assert agent_sub("researcher", "alice@example.com") == "agent.researcher.alice@example.com"
    assert parse_agent_sub("agent.researcher.ALICE@Example.com") == (
        "researcher",
        "alice@example.com",
    )
    # The name has no dot, so a dotted "name" is the name plus part of the email.
    assert parse_agent_sub("agent.researcher.evil.alice@example.com") == (
        "researcher",
        "evil.alice@example.com",
    )


def test_a_persons_sub_can_never_be_an_agents() -> None:
    assert person_sub("alice@example.com") == "user.alice@example.com"
    # Even a person whose address starts like an agent's stays under user.
    assert person_sub("agent.x.y@example.com") == "user.agent.x.y@example.com"
    with pytest.raises(InvalidGrant):
        parse_agent_sub(person_sub("alice@example.com"))


@pytest.mark.parametrize(
    "sub", ["researcher.alice@example.com", "agent..alice@example.com", "agent.Res.a@b.example"]
)
def test_malformed_agent_subs_are_refused(sub: str) -> None:
    with pytest.raises(InvalidGrant, match=r"an agent sub is agent\.<agent-name>\.<email>"):
        parse_agent_sub(sub)
