"""The broker's one error tree; the HTTP edge maps it to RFC 9457 problem+json.

    VouchError                          500 internal (never raised on purpose)
    ├── InvalidRequest                  400 invalid-request
    │   └── GrantInvalid                400 grant-invalid
    ├── Unauthenticated                 401 unauthenticated
    │   ├── TokenInvalid                401 token-invalid
    │   │   └── TokenExpired            401 token-expired
    │   ├── TokenRevoked                401 token-revoked
    │   ├── DpopProofInvalid            401 invalid-dpop-proof (RFC 9449 invalid_dpop_proof)
    │   ├── AssertionRejected           401 assertion-rejected
    │   │   ├── ChallengeInvalid        401 challenge-invalid
    │   │   └── KeyFlagged              401 key-flagged
    │   └── InviteInvalid               401 invite-invalid
    ├── PermissionDenied                403 permission-denied
    │   ├── PolicyDenied                403 policy-denied
    │   └── BudgetExceeded              403 budget-exceeded (spent, budget)
    ├── NotFound                        404 not-found
    ├── Conflict                        409 conflict
    ├── PayloadTooLarge                 413 payload-too-large
    ├── RateLimited                     429 rate-limited
    ├── StsRejected                     502 sts-rejected
    └── Unavailable                     503 unavailable
        ├── StoreUnavailable            503 store-unavailable
        │   └── RevocationUnconfirmed   503 revocation-unconfirmed
        └── StsUnavailable              503 sts-unavailable

Each class has a stable `slug`; the problem `type` is ``urn:vouch:problem:<slug>`` and the
SDK maps the same slugs back to exceptions of the same names.
"""

from __future__ import annotations

from typing import ClassVar

from policies.errors import GrantDenied, PoliciesError

PROBLEM_PREFIX = "urn:vouch:problem:"


class VouchError(Exception):
    """Base of every error the broker raises on purpose."""

    slug: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return PROBLEM_PREFIX + self.slug

    def problem(self, instance: str | None = None) -> dict[str, object]:
        """The RFC 9457 body: standard members first, then the error's own data."""
        body: dict[str, object] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class InvalidRequest(VouchError):
    slug, status, title = "invalid-request", 400, "Invalid request"


class GrantInvalid(InvalidRequest):
    slug, title = "grant-invalid", "Invalid grant"


class Unauthenticated(VouchError):
    slug, status, title = "unauthenticated", 401, "Authentication required"


class TokenInvalid(Unauthenticated):
    slug, title = "token-invalid", "Invalid token"


class TokenExpired(TokenInvalid):
    slug, title = "token-expired", "Token expired"


class TokenRevoked(Unauthenticated):
    slug, title = "token-revoked", "Token revoked"


class DpopProofInvalid(Unauthenticated):
    """A key-bound token without a valid DPoP proof of its key (RFC 9449).

    The slug is RFC 9449's error code in the problem types' kebab-case, so one name is
    searched for; the code itself is the problem's `error` member and the
    ``WWW-Authenticate: DPoP error="invalid_dpop_proof"`` challenge.
    """

    slug, title = "invalid-dpop-proof", "Invalid DPoP proof"
    code: ClassVar[str] = "invalid_dpop_proof"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail, error=self.code, **extra)


class AssertionRejected(Unauthenticated):
    slug, title = "assertion-rejected", "Security key assertion rejected"


class ChallengeInvalid(AssertionRejected):
    slug, title = "challenge-invalid", "Challenge unknown, used or expired"


class KeyFlagged(AssertionRejected):
    slug, title = "key-flagged", "Security key flagged as possibly cloned"


class InviteInvalid(Unauthenticated):
    slug, title = "invite-invalid", "Invite code unknown, used or expired"


class PermissionDenied(VouchError):
    slug, status, title = "permission-denied", 403, "Permission denied"


class PolicyDenied(PermissionDenied):
    slug, title = "policy-denied", "Denied by organisation policy"


class BudgetExceeded(PermissionDenied):
    """The delegation was revoked because its spend reached its budget (`spent`, `budget`:
    decimal strings in the price table's currency)."""

    slug, title = "budget-exceeded", "Delegation budget spent"

    def __init__(self, detail: str, *, spent: str, budget: str, **extra: object) -> None:
        super().__init__(detail, spent=spent, budget=budget, **extra)
        self.spent = spent
        self.budget = budget


class NotFound(VouchError):
    slug, status, title = "not-found", 404, "Not found"


class Conflict(VouchError):
    slug, status, title = "conflict", 409, "Conflict"


class PayloadTooLarge(VouchError):
    slug, status, title = "payload-too-large", 413, "Payload too large"


class RateLimited(VouchError):
    slug, status, title = "rate-limited", 429, "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, **extra: object) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class StsRejected(VouchError):
    slug, status, title = "sts-rejected", 502, "AWS STS rejected the request"


class Unavailable(VouchError):
    slug, status, title = "unavailable", 503, "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1, **extra: object) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class StoreUnavailable(Unavailable):
    slug, title = "store-unavailable", "State store unavailable"


class RevocationUnconfirmed(StoreUnavailable):
    """A revocation (or sign-out) that may not have been recorded: the client must retry
    the same request until it is acknowledged (docs/operating.md, "Replication and failover")."""

    slug, title = "revocation-unconfirmed", "Revocation not confirmed"


class StsUnavailable(Unavailable):
    slug, title = "sts-unavailable", "AWS STS unavailable"


ALL_ERRORS: tuple[type[VouchError], ...] = (
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
    Unavailable,
    StoreUnavailable,
    RevocationUnconfirmed,
    StsUnavailable,
)


def from_policy(
    exc: PoliciesError, *, invalid: type[VouchError] = GrantInvalid, prefix: str = ""
) -> VouchError:
    """The one conversion of a policies error, keyed on its code: the policy saying no is
    403 policy-denied (with the failed check as `reason`); anything malformed is `invalid`
    (400 grant-invalid unless the caller's input was not a grant), with the code as `reason`.
    """
    if exc.code == GrantDenied.code:
        check = exc.check if isinstance(exc, GrantDenied) else exc.code
        return PolicyDenied(prefix + str(exc), reason=check)
    return invalid(prefix + str(exc), reason=exc.code)
