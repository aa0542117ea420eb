"""Session names the broker gives, and the way back from an identity ARN to who called."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.attribution import (
    Attribution,
    BrokerRoles,
    agent_session_name,
    attribute,
    email_digest,
    person_session_name,
)

pytestmark = pytest.mark.unit

ROLES = BrokerRoles(
    account_id="123456789012", agents_role="vouch-agents", people_role="vouch-people"
)
DLG = "dlg_3kq0b4Y2m9T1xVwA"
STS_NAME = re.compile(r"[\w+=,.@-]{2,64}")
LONG = "firstname.lastname@engineering.bigcompany.example.com"


def arn(role: str, session: str, account: str = "123456789012") -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/{session}"


def test_an_agent_session_names_the_delegation_the_agent_and_the_person() -> None:
    name = agent_session_name(DLG, "researcher", "alice@example.com")
    assert name == "dlg_3kq0b4Y2m9T1xVwA.researcher.alice@example.com"
    assert attribute(arn("vouch-agents", name), ROLES) == Attribution(
        kind="agent",
        arn=arn("vouch-agents", name),
        role="vouch-agents",
        delegation=DLG,
        agent="researcher",
        email="alice@example.com",
    )


def test_a_persons_own_session_says_human_access() -> None:
    name = person_session_name("alice@example.com")
    assert name == "user.alice@example.com"
    found = attribute(arn("vouch-people", name), ROLES)
    assert (found.kind, found.email, found.delegation, found.agent) == (
        "person",
        "alice@example.com",
        None,
        None,
    )


def test_a_long_name_keeps_the_delegation_and_agent_whole_and_ends_with_the_emails_digest() -> None:
    name = agent_session_name(DLG, "researcher", LONG)
    assert name == f"{DLG}.researcher.firstname.lastname@engi,{email_digest(LONG)}"
    assert len(name) == 64 and STS_NAME.fullmatch(name)
    found = attribute(arn("vouch-agents", name), ROLES)
    assert (found.kind, found.delegation, found.agent, found.email) == (
        "agent",
        DLG,
        "researcher",
        None,
    )
    assert found.shortened and found.person == f"firstname.lastname@engi...,{email_digest(LONG)}"
    assert found.is_of(LONG)
    # Same start, another person: the digest tells them apart.
    assert not found.is_of("firstname.lastname@engineering.othercompany.example.com")
    assert found.with_email(LONG).person == LONG


def test_a_long_persons_name_is_shortened_the_same_way() -> None:
    email = "a" * 50 + "@example.com"
    name = person_session_name(email)
    assert name == "user." + "a" * 50 + f",{email_digest(email)}"
    found = attribute(arn("vouch-people", name), ROLES)
    assert found.kind == "person" and found.email is None and found.is_of(email)
    assert not found.is_of("b" + email[1:])


@pytest.mark.parametrize(
    ("identity", "role"),
    [
        ("arn:aws:iam::123456789012:user/bob", None),
        ("arn:aws:sts::123456789012:assumed-role/admin/bob", "admin"),
        # The broker's role names, another account's.
        (
            arn("vouch-agents", f"{DLG}.researcher.alice@example.com", "999999999999"),
            "vouch-agents",
        ),
        # The broker's role, but a name the broker never gives.
        (arn("vouch-agents", "agent.researcher.alice@example.com"), "vouch-agents"),
        (arn("vouch-agents", f"{DLG}.researcher.not-an-email"), "vouch-agents"),
        (arn("vouch-people", "alice@example.com"), "vouch-people"),
        ("arn:aws:sts::123456789012:federated-user/bob", None),
        ("", None),
    ],
)
def test_anything_else_is_foreign_with_its_arn_kept(identity: str, role: str | None) -> None:
    found = attribute(identity, ROLES)
    assert found == Attribution(kind="foreign", arn=identity, role=role)
    assert found.person == "" and not found.is_of("alice@example.com")


def test_without_a_people_role_a_user_session_is_foreign() -> None:
    roles = BrokerRoles(account_id="123456789012", agents_role="vouch-agents")
    assert attribute(arn("vouch-people", "user.alice@example.com"), roles).kind == "foreign"


EMAILS = st.from_regex(
    r"[a-z0-9][a-z0-9._+=-]{0,40}@[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}", fullmatch=True
).filter(lambda e: len(e) <= 64)
AGENTS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
DLGS = st.from_regex(r"dlg_[A-Za-z0-9_-]{16}", fullmatch=True)


@given(DLGS, AGENTS, EMAILS)
def test_every_agent_name_fits_sts_and_reads_back_to_its_delegation_agent_and_person(
    dlg: str, agent: str, email: str
) -> None:
    name = agent_session_name(dlg, agent, email)
    assert STS_NAME.fullmatch(name) and name.startswith(f"{dlg}.{agent}.")
    found = attribute(arn("vouch-agents", name), ROLES)
    assert (found.kind, found.delegation, found.agent) == ("agent", dlg, agent)
    assert found.is_of(email)
    assert found.email == (None if found.shortened else email)


@given(EMAILS)
def test_every_person_name_fits_sts_and_reads_back_to_its_person(email: str) -> None:
    name = person_session_name(email)
    assert STS_NAME.fullmatch(name) and name.startswith("user.")
    found = attribute(arn("vouch-people", name), ROLES)
    assert found.kind == "person" and found.is_of(email)
