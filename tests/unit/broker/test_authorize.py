"""Authorize: the STS duration never outlasts the token (invariant 12), and the cache key holds
what shapes the credentials but not the clamp that changes by the second; a person's own
credentials get exactly the models their [[use]] rules allow or fewer (invariant 3), and
never outlast the session (invariant 12)."""

from __future__ import annotations

import msgspec
import pytest

from broker.authorize import Authorizer, Principal
from broker.errors import GrantInvalid, PolicyDenied
from broker.session import Person
from broker.settings import EXAMPLE_POLICY
from policies import Catalog, load_org_policy

pytestmark = pytest.mark.unit

NOW = 1_796_000_000.0
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    catalog = Catalog.builtin()
    return Authorizer(catalog, load_org_policy(EXAMPLE_POLICY, catalog), min_duration_s=900)


def principal(left_s: float, **changes: object) -> Principal:
    """Alice's researcher, whose token has `left_s` seconds to live at NOW."""
    base = Principal(
        id="dlg_abc",
        sub="agent.researcher.alice@example.com",
        email="alice@example.com",
        agent="researcher",
        key="cid123",
        models=(HAIKU,),
        max_duration_s=None,
        expires_at=int(NOW + left_s),
    )
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize(
    ("left_s", "asked", "term", "duration"),
    [
        (7200, None, 900, 900),  # the default is the floor
        (7200, 3600, 3600, 3600),  # room enough: what was asked (within the policy's 1 h)
        (7200, 43200, 3600, 3600),  # the org policy's ceiling
        (1800, 3600, 3600, 1800),  # 30 min left: 30 min, not the hour asked for
        (1800.9, 3600, 3600, 1800),  # whole seconds, never past the end
        (901, None, 900, 900),
        (300, 3600, 3600, 900),  # under STS's floor: the floor, the session policy ends it
        (-20, None, 900, 900),  # expired within the clock leeway
    ],
)
def test_the_duration_is_clamped_to_what_is_left_of_the_token(
    authorizer: Authorizer, left_s: float, asked: int | None, term: int, duration: int
) -> None:
    grant = authorizer.authorize(principal(left_s), models=None, duration_s=asked, now=NOW)
    assert (grant.term_s, grant.duration_s) == (term, duration)
    assert grant.expires_at == int(NOW + left_s)


def test_the_tokens_own_ceiling_still_applies(authorizer: Authorizer) -> None:
    narrowed = principal(7200, max_duration_s=1200)
    grant = authorizer.authorize(narrowed, models=None, duration_s=3600, now=NOW)
    assert (grant.term_s, grant.duration_s) == (1200, 1200)


def test_the_cache_key_ignores_the_clamp_and_names_the_end(authorizer: Authorizer) -> None:
    p = principal(1800)
    early = authorizer.authorize(p, models=None, duration_s=3600, now=NOW)
    later = authorizer.authorize(p, models=None, duration_s=3600, now=NOW + 60)
    assert (early.duration_s, later.duration_s) == (1800, 1740)
    # One key a minute apart: otherwise every exchange of the token's last hour would be a
    # cache miss and an STS call.
    assert early.key == later.key == ("dlg_abc", (HAIKU,), 3600, int(NOW + 1800))
    other_end = authorizer.authorize(principal(3600), models=None, duration_s=3600, now=NOW)
    assert other_end.key != early.key  # the session policy's end differs
    other_term = authorizer.authorize(p, models=None, duration_s=900, now=NOW)
    assert other_term.key != early.key


def test_an_empty_model_list_never_means_the_whole_grant(authorizer: Authorizer) -> None:
    with pytest.raises(GrantInvalid, match="name at least one model"):
        authorizer.authorize(principal(7200), models=[], duration_s=None, now=NOW)
    whole = authorizer.authorize(principal(7200), models=None, duration_s=None, now=NOW)
    assert whole.models == (HAIKU,)


def person(left_s: float, email: str = "alice@example.com") -> Person:
    """Alice signed in, her session having `left_s` seconds to live at NOW."""
    return Person(
        email=email,
        cid="cid123",
        amr=("hwk", "uv"),
        auth_time=int(NOW - 60),
        issued_at=int(NOW - 60),
        expires_at=int(NOW + left_s),
        jti="jti-1",
        kid="kid-1",
    )


@pytest.mark.parametrize(
    ("left_s", "asked", "term", "duration"),
    [
        (7200, None, 3600, 3600),  # a person's default: the [[use]] rule's 1 h, not the floor
        (7200, 1800, 1800, 1800),  # what was asked, within it
        (7200, 43200, 3600, 3600),  # never past the policy's maximum
        (1800, None, 3600, 1800),  # 30 min of session left: 30 min
        (300, None, 3600, 900),  # under STS's floor: the floor, the session policy ends it
    ],
)
def test_a_persons_own_credentials_never_outlast_the_session_or_the_policy(
    authorizer: Authorizer, left_s: float, asked: int | None, term: int, duration: int
) -> None:
    grant = authorizer.authorize_person(person(left_s), models=None, duration_s=asked, now=NOW)
    assert (grant.term_s, grant.duration_s) == (term, duration)
    assert grant.expires_at == int(NOW + left_s)
    assert grant.principal == Principal(
        id="jti-1",
        sub="user.alice@example.com",
        email="alice@example.com",
        agent="",
        key="cid123",
        models=(HAIKU, SONNET),
        max_duration_s=None,
        expires_at=int(NOW + left_s),
        access="human",
    )
    assert grant.models == (HAIKU, SONNET)  # everything her [[use]] rule allows
    assert grant.key == ("jti-1", (HAIKU, SONNET), term, int(NOW + left_s))


def test_a_person_narrows_to_models_they_may_use_and_never_past_them(
    authorizer: Authorizer,
) -> None:
    narrowed = authorizer.authorize_person(
        person(7200), models=["us.claude-sonnet-4-5"], duration_s=None, now=NOW
    )
    assert narrowed.models == (SONNET,)
    with pytest.raises(PolicyDenied) as wider:
        authorizer.authorize_person(
            person(7200), models=["us.claude-opus-4-5", HAIKU], duration_s=None, now=NOW
        )
    opus = "us.anthropic.claude-opus-4-5-20251101-v1:0"
    assert wider.value.extra == {"models": [opus], "reason": "model-not-allowed"}
    assert str(wider.value) == (
        f"the org policy does not let alice@example.com use {opus} themselves;"
        " `vouch models` lists what they may use"
    )
    with pytest.raises(GrantInvalid, match="name at least one model"):
        authorizer.authorize_person(person(7200), models=[], duration_s=None, now=NOW)


def test_a_person_no_use_rule_names_gets_nothing(authorizer: Authorizer) -> None:
    with pytest.raises(PolicyDenied) as refused:
        authorizer.authorize_person(
            person(7200, "mallory@elsewhere.example"), models=None, duration_s=None, now=NOW
        )
    assert refused.value.extra == {"reason": "person-not-allowed"}
    assert str(refused.value) == "mallory@elsewhere.example may not use any model themselves"
