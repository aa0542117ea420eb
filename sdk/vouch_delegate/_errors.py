"""Every error the SDK raises on purpose, in one tree that mirrors the broker's.

    VouchError                          any failure (a broker 500 "internal" arrives as this)
    ├── ConfigError                     local: no server or token, unsafe token file, bad value
    ├── NetworkError                    local: the broker did not answer (after retries)
    ├── InvalidResponse                 local: the broker's answer is not what it should be
    ├── GrantMismatch                   local: a delegation challenge not bound to the grant shown
    ├── DelegationDenied                local: the person refused the agent's request
    ├── DelegationExpired               local: the request expired or the wait timed out
    ├── NotSignedIn                     local: no usable `vouch login` session for this broker
    ├── InvalidRequest                  400 invalid-request
    │   └── GrantInvalid                400 grant-invalid
    ├── Unauthenticated                 401 unauthenticated
    │   ├── TokenInvalid                401 token-invalid
    │   │   └── TokenExpired            401 token-expired
    │   ├── TokenRevoked                401 token-revoked
    │   ├── AssertionRejected           401 assertion-rejected
    │   │   ├── ChallengeInvalid        401 challenge-invalid
    │   │   └── KeyFlagged              401 key-flagged
    │   └── InviteInvalid               401 invite-invalid
    ├── PermissionDenied                403 permission-denied
    │   ├── PolicyDenied                403 policy-denied
    │   └── BudgetExceeded              403 budget-exceeded      (spent, budget)
    ├── NotFound                        404 not-found
    ├── Conflict                        409 conflict
    ├── PayloadTooLarge                 413 payload-too-large
    ├── RateLimited                     429 rate-limited        (retry_after)
    ├── StsRejected                     502 sts-rejected
    └── BrokerUnavailable               503 unavailable         (retry_after)
        ├── StoreUnavailable            503 store-unavailable
        │   └── RevocationUnconfirmed   503 revocation-unconfirmed  (may not be recorded: retry)
        └── StsUnavailable              503 sts-unavailable

The broker answers errors as RFC 9457 problems whose `type` is ``urn:vouch:problem:<slug>``;
`from_problem` turns one back into the class of the same name, or, for a slug this SDK does
not know (a newer broker, a proxy), into the class for its HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_PREFIX = "urn:vouch:problem:"


class VouchError(Exception):
    """Base of every error the SDK raises on purpose.

    `detail` is the human-readable message; `status` the HTTP status (None for local
    errors); `problem` the broker's whole problem body (empty for local errors).
    """

    slug: ClassVar[str] = "internal"

    def __init__(
        self, detail: str, *, status: int | None = None, problem: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})


class ConfigError(VouchError):
    slug = "config"


class NetworkError(VouchError):
    slug = "network"


class InvalidResponse(VouchError):
    """A success answer unlike the broker's: not JSON, or a field missing or of the wrong type."""

    slug = "invalid-response"


class GrantMismatch(VouchError):
    slug = "grant-mismatch"


class DelegationDenied(VouchError):
    slug = "delegation-denied"


class DelegationExpired(VouchError):
    slug = "delegation-expired"


class NotSignedIn(VouchError):
    """No saved session for this broker, or the broker no longer accepts it: `vouch login`."""

    slug = "not-signed-in"


class InvalidRequest(VouchError):
    slug = "invalid-request"


class GrantInvalid(InvalidRequest):
    slug = "grant-invalid"


class Unauthenticated(VouchError):
    slug = "unauthenticated"


class TokenInvalid(Unauthenticated):
    slug = "token-invalid"


class TokenExpired(TokenInvalid):
    slug = "token-expired"


class TokenRevoked(Unauthenticated):
    slug = "token-revoked"


class DpopProofInvalid(Unauthenticated):
    """RFC 9449 `invalid_dpop_proof`: a key-bound token without a valid proof of its key."""

    slug = "invalid-dpop-proof"


class AssertionRejected(Unauthenticated):
    slug = "assertion-rejected"


class ChallengeInvalid(AssertionRejected):
    slug = "challenge-invalid"


class KeyFlagged(AssertionRejected):
    slug = "key-flagged"


class InviteInvalid(Unauthenticated):
    slug = "invite-invalid"


class PermissionDenied(VouchError):
    slug = "permission-denied"


class PolicyDenied(PermissionDenied):
    slug = "policy-denied"


class BudgetExceeded(PermissionDenied):
    """The delegation was revoked because it spent its budget: ask its person for a new one.

    `spent` and `budget` are the broker's decimal strings ("5.0123", "5.00") in the price
    table's currency; None if the problem did not carry them.
    """

    slug = "budget-exceeded"

    def __init__(
        self, detail: str, *, status: int | None = None, problem: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(detail, status=status, problem=problem)
        spent, budget = self.problem.get("spent"), self.problem.get("budget")
        self.spent: str | None = spent if isinstance(spent, str) else None
        self.budget: str | None = budget if isinstance(budget, str) else None


class NotFound(VouchError):
    slug = "not-found"


class Conflict(VouchError):
    slug = "conflict"


class PayloadTooLarge(VouchError):
    slug = "payload-too-large"


class _RetryLater(VouchError):
    """An error after which the same request may succeed: `retry_after` seconds, if known."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail, status=status, problem=problem)
        self.retry_after = retry_after


class RateLimited(_RetryLater):
    slug = "rate-limited"


class StsRejected(VouchError):
    slug = "sts-rejected"


class BrokerUnavailable(_RetryLater):
    slug = "unavailable"


class StoreUnavailable(BrokerUnavailable):
    slug = "store-unavailable"


class RevocationUnconfirmed(StoreUnavailable):
    """A revocation the broker could not confirm: it may not have been recorded. Send the
    same request again until it is confirmed (repeating it is safe)."""

    slug = "revocation-unconfirmed"


class StsUnavailable(BrokerUnavailable):
    slug = "sts-unavailable"


_BROKER_ERRORS: tuple[type[VouchError], ...] = (
    VouchError,
    InvalidRequest,
    GrantInvalid,
    Unauthenticated,
    TokenInvalid,
    TokenExpired,
    TokenRevoked,
    DpopProofInvalid,
    AssertionRejected,
    ChallengeInvalid,
    KeyFlagged,
    InviteInvalid,
    PermissionDenied,
    PolicyDenied,
    BudgetExceeded,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    StsRejected,
    BrokerUnavailable,
    StoreUnavailable,
    RevocationUnconfirmed,
    StsUnavailable,
)
_BY_SLUG: dict[str, type[VouchError]] = {cls.slug: cls for cls in _BROKER_ERRORS}
# A 502/504 without our slug comes from a proxy in front of the broker, not from STS:
# treat it like a 503 so callers retry instead of reporting an AWS refusal.
_BY_STATUS: dict[int, type[VouchError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    502: BrokerUnavailable,
    503: BrokerUnavailable,
    504: BrokerUnavailable,
}


def error_class(status: int, type_uri: object) -> type[VouchError]:
    """The class for a problem `type` URI, else for the HTTP status."""
    if isinstance(type_uri, str) and type_uri.startswith(PROBLEM_PREFIX):
        known = _BY_SLUG.get(type_uri.removeprefix(PROBLEM_PREFIX))
        if known is not None:
            return known
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InvalidRequest if 400 <= status < 500 else VouchError


def from_problem(
    status: int, problem: Mapping[str, Any], *, retry_after: float | None = None
) -> VouchError:
    """The typed error for a problem body (or any error body parsed to a mapping)."""
    cls = error_class(status, problem.get("type"))
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status} from broker")
    if issubclass(cls, _RetryLater):
        if retry_after is None:
            retry_after = _number(problem.get("retry_after"))
        return cls(detail, status=status, problem=problem, retry_after=retry_after)
    return cls(detail, status=status, problem=problem)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
