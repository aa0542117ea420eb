"""Problem bodies become the SDK error of the same name as the broker's."""

from __future__ import annotations

import pytest
import vouch_delegate
from vouch_delegate._errors import from_problem

from broker import errors as broker_errors

pytestmark = pytest.mark.unit

RENAMED = {"Unavailable": "BrokerUnavailable"}


@pytest.mark.parametrize("cls", broker_errors.ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_broker_slug_maps_to_the_sdk_class_of_the_same_name(
    cls: type[broker_errors.VouchError],
) -> None:
    extra: dict[str, object] = {"retry_after": 7} if cls.status in (429, 503) else {}
    if cls is broker_errors.BudgetExceeded:
        extra = {"spent": "5.0012", "budget": "5.00"}
    body = cls("what happened", **extra).problem("/v1/x")
    error = from_problem(cls.status, body)
    assert type(error).__name__ == RENAMED.get(cls.__name__, cls.__name__)
    assert error.detail == "what happened"
    assert error.status == cls.status
    assert error.problem["instance"] == "/v1/x"
    if cls is broker_errors.BudgetExceeded:
        assert isinstance(error, vouch_delegate.BudgetExceeded)
        assert isinstance(error, vouch_delegate.PermissionDenied)
        assert (error.spent, error.budget) == ("5.0012", "5.00")
        assert error.problem["type"] == "urn:vouch:problem:budget-exceeded"
    elif extra:
        assert getattr(error, "retry_after", None) == 7


def test_hierarchy_lets_callers_catch_families() -> None:
    revoked = from_problem(401, {"type": "urn:vouch:problem:token-revoked", "detail": "gone"})
    assert isinstance(revoked, vouch_delegate.Unauthenticated)
    assert isinstance(revoked, vouch_delegate.VouchError)
    expired = from_problem(401, {"type": "urn:vouch:problem:token-expired"})
    assert isinstance(expired, vouch_delegate.TokenInvalid)
    sts_down = from_problem(503, {"type": "urn:vouch:problem:sts-unavailable"})
    assert isinstance(sts_down, vouch_delegate.BrokerUnavailable)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, vouch_delegate.InvalidRequest),
        (401, vouch_delegate.Unauthenticated),
        (403, vouch_delegate.PermissionDenied),
        (404, vouch_delegate.NotFound),
        (405, vouch_delegate.InvalidRequest),
        (409, vouch_delegate.Conflict),
        (429, vouch_delegate.RateLimited),
        (500, vouch_delegate.VouchError),
        (502, vouch_delegate.BrokerUnavailable),
        (503, vouch_delegate.BrokerUnavailable),
    ],
)
def test_unknown_slugs_fall_back_by_status(status: int, expected: type[Exception]) -> None:
    error = from_problem(status, {"type": "urn:vouch:problem:from-the-future", "title": "New"})
    assert type(error) is expected
    assert error.detail == "New"


def test_foreign_type_uris_and_empty_bodies_fall_back_by_status() -> None:
    assert type(from_problem(403, {"type": "about:blank"})) is vouch_delegate.PermissionDenied
    empty = from_problem(503, {})
    assert type(empty) is vouch_delegate.BrokerUnavailable
    assert empty.detail == "HTTP 503 from broker"


def test_retry_after_header_wins_over_body_and_junk_is_ignored() -> None:
    body = {"type": "urn:vouch:problem:rate-limited", "retry_after": 30}
    limited = from_problem(429, body, retry_after=5)
    assert isinstance(limited, vouch_delegate.RateLimited)
    assert limited.retry_after == 5
    junk = from_problem(503, {"type": "urn:vouch:problem:unavailable", "retry_after": "soon"})
    assert isinstance(junk, vouch_delegate.BrokerUnavailable)
    assert junk.retry_after is None


def test_local_errors_carry_no_status() -> None:
    error = vouch_delegate.ConfigError("no token")
    assert error.status is None and error.problem == {} and str(error) == "no token"
