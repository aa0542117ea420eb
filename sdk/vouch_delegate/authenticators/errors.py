"""Errors raised by the authenticators package.

    AuthenticatorError               any failure to reach or use a FIDO2 authenticator
    ├── NoAuthenticator              no USB key connected, or it cannot be opened
    ├── AuthenticatorSpecError       an --authenticator value that is neither usb nor soft:PATH
    ├── KeyFileError                 a software key file that is unreadable, corrupt or too open
    └── CeremonyError                the key refused or failed a registration or login
        ├── PinError                 PIN wrong, missing, not set or blocked
        ├── UserPresenceTimeout      nobody touched the key in time
        ├── CredentialExcluded       the key already holds a credential for this account
        └── NoCredential             the key holds no credential the server asked for

fido2 reports ceremony failures as `fido2.client.ClientError` whose `cause` is a
`CtapError`; `from_client_error` converts them at the one place the CLI calls fido2.
"""

from __future__ import annotations

from fido2.client import ClientError, PinRequiredError
from fido2.ctap import CtapError

__all__ = [
    "AuthenticatorError",
    "AuthenticatorSpecError",
    "CeremonyError",
    "CredentialExcluded",
    "KeyFileError",
    "NoAuthenticator",
    "NoCredential",
    "PinError",
    "UserPresenceTimeout",
    "from_client_error",
]


class AuthenticatorError(Exception):
    """Base of every error this package raises on purpose."""


class NoAuthenticator(AuthenticatorError):
    """No usable security key is connected."""


class AuthenticatorSpecError(AuthenticatorError):
    """An authenticator spec that is neither `usb` nor `soft:PATH`."""


class KeyFileError(AuthenticatorError):
    """A software authenticator key file cannot be used safely."""


class CeremonyError(AuthenticatorError):
    """The authenticator refused or failed a WebAuthn ceremony.

    `ctap_code` is the CTAP status name (e.g. "PIN_INVALID") when the key sent one.
    """

    def __init__(self, message: str, *, ctap_code: str | None = None) -> None:
        super().__init__(message)
        self.ctap_code = ctap_code


class PinError(CeremonyError):
    """The PIN was wrong, missing, not set on the key, or is blocked."""


class UserPresenceTimeout(CeremonyError):
    """The key waited for a touch that never came."""


class CredentialExcluded(CeremonyError):
    """The key already holds a credential the server asked not to duplicate."""


class NoCredential(CeremonyError):
    """The key holds no credential the server would accept."""


ERR = CtapError.ERR
_BY_CODE: dict[int, tuple[type[CeremonyError], str]] = {
    ERR.PIN_INVALID: (PinError, "wrong PIN"),
    ERR.PIN_BLOCKED: (PinError, "the PIN is blocked: reset the key"),
    ERR.PIN_AUTH_BLOCKED: (PinError, "too many wrong PINs: unplug and replug the key"),
    ERR.PIN_NOT_SET: (PinError, "the key has no PIN: set one first"),
    ERR.PIN_AUTH_INVALID: (PinError, "the key rejected the PIN token"),
    ERR.PUAT_REQUIRED: (PinError, "the key requires a PIN"),
    ERR.PIN_POLICY_VIOLATION: (PinError, "the PIN does not meet the key's policy"),
    ERR.USER_ACTION_TIMEOUT: (UserPresenceTimeout, "the key was not touched in time"),
    ERR.ACTION_TIMEOUT: (UserPresenceTimeout, "the key was not touched in time"),
    ERR.KEEPALIVE_CANCEL: (UserPresenceTimeout, "the request was cancelled"),
    ERR.CREDENTIAL_EXCLUDED: (CredentialExcluded, "this key is already registered"),
    ERR.NO_CREDENTIALS: (NoCredential, "this key holds no credential for this server"),
}


def from_client_error(error: ClientError) -> CeremonyError:
    """The typed error for a failed `Fido2Client` call (raise it `from error`)."""
    if isinstance(error, PinRequiredError):
        return PinError("a PIN is required but none was given")
    cause = error.cause
    if not isinstance(cause, CtapError):
        return CeremonyError(f"security key error: {error.code.name} ({cause})")
    name = cause.code.name
    kind, message = _BY_CODE.get(cause.code, (CeremonyError, f"security key error: {name}"))
    return kind(message, ctap_code=name)
