"""The revocation role policy denies exactly the revoked sessions, judged by the IAM evaluator.

Sessions are what the broker issues: principal tags (person, agent or none for a person's own,
delegation, approving key) and a token issue time. The role allows every Bedrock call; the
session policy allows the model; the rendered Deny is the role's inline policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import Outcome, Request, evaluate
from policies.revocation_policy import (
    KEEP_MARGIN_S,
    ROLE_INLINE_BUDGET,
    RevokedEntry,
    iso,
    render,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000
MAX_SESSION = 3600
MODEL = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}],
}
SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": MODEL}],
}
USERS = ("alice@example.com", "bob@example.com", "carol@example.com")
AGENTS = ("researcher", "coder")
DELEGATIONS = ("dlg_AAAAAAAAAAAAAAAA", "dlg_BBBBBBBBBBBBBBBB", "dlg_CCCCCCCCCCCCCCCC")
KEYS = ("k1AAAAAAAAAAAAAAAAAAAA", "k2BBBBBBBBBBBBBBBBBBBB")


@dataclass(frozen=True)
class Session:
    user: str
    agent: str | None  # None: the person's own session
    delegation: str | None
    key: str
    issued_at: int

    def context(self) -> dict[str, str]:
        tags = {"vouch:User": self.user, "vouch:Key": self.key}
        if self.agent is not None and self.delegation is not None:
            tags |= {"vouch:Agent": self.agent, "vouch:Delegation": self.delegation}
        context = {f"aws:PrincipalTag/{k}": v for k, v in tags.items()}
        return context | {"aws:TokenIssueTime": iso(self.issued_at)}

    def revoked_by(self, entry: RevokedEntry) -> bool:
        before = self.issued_at < entry.revoked_at
        match entry.kind:
            case "delegation":
                return self.delegation == entry.value
            case "agent":
                return before and f"agent.{self.agent}.{self.user}" == entry.value
            case "user":
                return before and self.user == entry.value
            case "credential":
                return before and self.key == entry.value


def decision(policy: str | None, session: Session) -> Outcome:
    identity = [ROLE] if policy is None else [ROLE, policy]
    request = Request("bedrock:InvokeModel", MODEL, session.context())
    return evaluate(request, identity, [SESSION_POLICY]).outcome


recent = st.integers(NOW - MAX_SESSION, NOW)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    user, key = draw(st.sampled_from(USERS)), draw(st.sampled_from(KEYS))
    if draw(st.booleans()):
        return Session(user, None, None, key, draw(recent))
    agent, dlg = draw(st.sampled_from(AGENTS)), draw(st.sampled_from(DELEGATIONS))
    return Session(user, agent, dlg, key, draw(recent))


@st.composite
def entries(draw: st.DrawFn) -> RevokedEntry:
    kind = draw(st.sampled_from(["delegation", "agent", "user", "credential"]))
    value = {
        "delegation": lambda: draw(st.sampled_from(DELEGATIONS)),
        "agent": lambda: f"agent.{draw(st.sampled_from(AGENTS))}.{draw(st.sampled_from(USERS))}",
        "user": lambda: draw(st.sampled_from(USERS)),
        "credential": lambda: draw(st.sampled_from(KEYS)),
    }[kind]()
    return RevokedEntry(draw(recent), kind, value)


@settings(max_examples=400, deadline=None)
@given(st.lists(entries(), max_size=12), st.lists(sessions(), min_size=1, max_size=6))
def test_aws_denies_exactly_the_revoked_sessions(
    revoked: list[RevokedEntry], alive: list[Session]
) -> None:
    policy = render(revoked, now=NOW, max_session_s=MAX_SESSION)
    assert policy.coarse_before is None and policy.pruned == 0
    for session in alive:
        expected = any(session.revoked_by(e) for e in revoked)
        want = Outcome.EXPLICIT_DENY if expected else Outcome.ALLOW
        assert decision(policy.document, session) is want, (session, policy.document)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(entries(), min_size=1, max_size=40),
    st.lists(sessions(), min_size=1, max_size=6),
    st.integers(600, 3000),
)
def test_when_entries_do_not_fit_the_cut_still_denies_everything_revoked(
    revoked: list[RevokedEntry], alive: list[Session], budget: int
) -> None:
    policy = render(revoked, now=NOW, max_session_s=MAX_SESSION, budget=budget)
    assert policy.size <= budget
    for session in alive:
        if any(
            e.kind == "delegation"
            and session.delegation == e.value
            and session.issued_at > e.revoked_at
            for e in revoked
        ):
            continue  # the broker issues no session for a delegation after revoking it
        if any(session.revoked_by(e) for e in revoked):
            assert decision(policy.document, session) is Outcome.EXPLICIT_DENY, session
        elif policy.coarse_before is None or session.issued_at >= policy.coarse_before:
            # Beyond the stated cut nothing unrevoked is denied.
            assert decision(policy.document, session) is Outcome.ALLOW, session


def test_entries_are_pruned_once_no_session_they_deny_can_be_alive() -> None:
    horizon = NOW - MAX_SESSION - KEEP_MARGIN_S
    old = RevokedEntry(horizon, "user", USERS[0])
    young = RevokedEntry(horizon + 1, "delegation", DELEGATIONS[0])
    policy = render([old, young], now=NOW, max_session_s=MAX_SESSION)
    assert policy.pruned == 1 and policy.entries == (young,)
    assert render([old], now=NOW, max_session_s=MAX_SESSION).document is None


def test_a_reinstated_person_gets_working_sessions_again() -> None:
    revoked = RevokedEntry(NOW - 600, "user", USERS[0])
    policy = render([revoked], now=NOW, max_session_s=MAX_SESSION).document
    before = Session(USERS[0], "researcher", DELEGATIONS[0], KEYS[0], NOW - 601)
    after = Session(USERS[0], "researcher", DELEGATIONS[1], KEYS[0], NOW - 599)
    assert decision(policy, before) is Outcome.EXPLICIT_DENY
    assert decision(policy, after) is Outcome.ALLOW


def test_an_agent_revocation_spares_the_persons_own_sessions_and_other_agents() -> None:
    revoked = RevokedEntry(NOW, "agent", f"agent.researcher.{USERS[0]}")
    policy = render([revoked], now=NOW, max_session_s=MAX_SESSION).document
    own = Session(USERS[0], None, None, KEYS[0], NOW - 10)
    other = Session(USERS[0], "coder", DELEGATIONS[0], KEYS[0], NOW - 10)
    hit = Session(USERS[0], "researcher", DELEGATIONS[1], KEYS[0], NOW - 10)
    assert decision(policy, own) is Outcome.ALLOW
    assert decision(policy, other) is Outcome.ALLOW
    assert decision(policy, hit) is Outcome.EXPLICIT_DENY


def test_a_thousand_revocations_fit_or_fall_back_never_over_the_role_budget() -> None:
    many = [
        RevokedEntry(NOW - 3000 + i, "agent" if i % 2 else "user", _value(i)) for i in range(1000)
    ]
    many += [RevokedEntry(NOW - 3000 + i, "delegation", f"dlg_{i:016d}") for i in range(1000)]
    policy = render(many, now=NOW, max_session_s=MAX_SESSION)
    assert policy.size <= ROLE_INLINE_BUDGET
    assert policy.coarse_before is not None  # 2,000 exact entries cannot fit
    # Everything older than the cut is denied by it; the newest are still exact.
    assert policy.entries and min(e.revoked_at for e in policy.entries) >= policy.coarse_before
    delegations_only = render(many[1000:], now=NOW, max_session_s=MAX_SESSION)
    assert delegations_only.size <= ROLE_INLINE_BUDGET


def test_size_per_revoked_delegation() -> None:
    one = render([RevokedEntry(NOW, "delegation", DELEGATIONS[0])], now=NOW, max_session_s=60)
    two = render(
        [RevokedEntry(NOW, "delegation", d) for d in DELEGATIONS[:2]], now=NOW, max_session_s=60
    )
    three = render(
        [RevokedEntry(NOW, "delegation", d) for d in DELEGATIONS], now=NOW, max_session_s=60
    )
    assert one.size < 220
    assert three.size - two.size == len('"dlg_CCCCCCCCCCCCCCCC",')  # 23 characters each


def _value(i: int) -> str:
    user = f"user{i}@example.com"
    return f"agent.bot{i}.{user}" if i % 2 else user
