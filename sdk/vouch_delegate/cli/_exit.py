"""Exit codes, and the one mapping from errors to them.

0 ok    1 other failure    2 not signed in    3 no key    4 network
5 permission denied or revoked    6 config (bad arguments, environment, files; also a PIN
the key needs when there is no terminal to ask it on and VOUCH_PIN is unset or empty)
7 wrong PIN (the message says how many tries the key has left)
"""

from __future__ import annotations

from vouch_delegate._errors import (
    BrokerUnavailable,
    ConfigError,
    DelegationDenied,
    GrantMismatch,
    InvalidRequest,
    InvalidResponse,
    NetworkError,
    NotSignedIn,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    VouchError,
)

OK, FAILED, NOT_SIGNED_IN, NO_KEY, NETWORK, DENIED, CONFIG, WRONG_PIN = 0, 1, 2, 3, 4, 5, 6, 7


class NoKey(VouchError):
    """No usable security key, or the key failed the ceremony (PIN, touch, credential)."""

    slug = "no-key"


class WrongPin(VouchError):
    """The key refused the PIN (wrong, or blocked after too many wrong ones)."""

    slug = "wrong-pin"


_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int], ...] = (
    (NotSignedIn, NOT_SIGNED_IN),
    (NoKey, NO_KEY),
    (WrongPin, WRONG_PIN),
    # A rate cap lifts with time like an outage does: scripts treat both as "retry later".
    ((NetworkError, BrokerUnavailable, RateLimited), NETWORK),
    ((Unauthenticated, PermissionDenied, GrantMismatch, DelegationDenied), DENIED),
    ((ConfigError, InvalidRequest), CONFIG),
    # Not the person's fault and not likely to pass with a retry: a proxy, a wrong --server,
    # or a broker that is not what it claims to be.
    (InvalidResponse, FAILED),
)


def exit_code(exc: BaseException) -> int:
    for kinds, code in _CODES:
        if isinstance(exc, kinds):
            return code
    return FAILED
