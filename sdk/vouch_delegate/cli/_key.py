"""The security key: open it, sign WebAuthn ceremonies with it, and say what went wrong.

This is the one place the CLI calls fido2 (imported lazily: most commands never tap).
Authenticator errors become `NoKey` (exit 3), `WrongPin` (exit 7) or `ConfigError` (exit 6)
here.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from vouch_delegate._errors import ConfigError, InvalidResponse
from vouch_delegate.cli._exit import NoKey, WrongPin

PIN_ENV = "VOUCH_PIN"
AUTHENTICATOR_ENV = "VOUCH_AUTHENTICATOR"
NO_TERMINAL_FOR_PIN = (
    "the security key needs its PIN and there is no terminal to ask for it: "
    "set VOUCH_PIN (the software key's PIN is 123456), or run vouch in a terminal"
)
EMPTY_PIN = "VOUCH_PIN is empty: set it to the security key's PIN, or unset it to be asked"
# The codes that mean "this PIN is not the key's": the person can fix it by typing another.
_WRONG_PIN_CODES = frozenset({"PIN_INVALID", "PIN_BLOCKED", "PIN_AUTH_BLOCKED"})


@contextmanager
def _converted(device: Any = None) -> Iterator[None]:
    from fido2.client import ClientError

    from vouch_delegate.authenticators import (
        AuthenticatorError,
        AuthenticatorSpecError,
        KeyFileError,
        from_client_error,
    )

    try:
        yield
    except ClientError as exc:
        error = from_client_error(exc)
        if error.ctap_code in _WRONG_PIN_CODES:
            raise WrongPin(f"{error}{_retries_left(device)}") from exc
        raise NoKey(str(error)) from exc
    except (AuthenticatorSpecError, KeyFileError) as exc:
        raise ConfigError(str(exc)) from exc
    except AuthenticatorError as exc:
        raise NoKey(str(exc)) from exc


class Key:
    """A FIDO2 authenticator acting for `origin` (the broker URL this CLI talks to)."""

    def __init__(self, spec: str, origin: str, env: Mapping[str, str], err: TextIO) -> None:
        from vouch_delegate.authenticators import (
            NOT_HARDWARE_WARNING,
            NotHardwareWarning,
            open_authenticator,
        )

        self.origin = origin
        self.env = env
        self.err = err
        with _converted(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NotHardwareWarning)
            self.device = open_authenticator(spec)
        if any(issubclass(w.category, NotHardwareWarning) for w in caught):
            # Loud on purpose: a file-backed key must never be mistaken for hardware.
            bar = "!" * 78
            err.write(f"{bar}\n!! {NOT_HARDWARE_WARNING}\n!! key file: {spec[5:]}\n{bar}\n")

    def _pin(self) -> str | None:
        """The PIN from $VOUCH_PIN, else typed at the terminal (None: the person gave none).

        Raises: ConfigError when VOUCH_PIN is empty, or unset with no terminal to ask on.
        """
        if PIN_ENV in self.env:
            if not self.env[PIN_ENV]:
                raise ConfigError(EMPTY_PIN)
            return self.env[PIN_ENV]
        if not _has_terminal():
            # getpass would fall back to stdin, warn, and end in EOFError.
            raise ConfigError(NO_TERMINAL_FOR_PIN)
        return getpass.getpass("PIN for your security key: ", stream=self.err) or None

    def _prompt(self, message: str) -> None:
        self.err.write(f"{message}...\n")
        self.err.flush()

    def _client(self) -> Any:
        from vouch_delegate.authenticators import make_client

        return make_client(self.device, self.origin, pin=self._pin, on_prompt=self._prompt)

    def register(self, public_key: Mapping[str, Any]) -> dict[str, object]:
        """The attestation response (JSON) for an enroll ceremony's `publicKey` options."""
        from fido2.webauthn import PublicKeyCredentialCreationOptions

        parsed = _options(PublicKeyCredentialCreationOptions, public_key)
        with _converted(self.device):
            return _as_json(self._client().make_credential(parsed))

    def sign(self, public_key: Mapping[str, Any]) -> dict[str, object]:
        """The assertion response (JSON) for login or delegation `publicKey` options."""
        from fido2.webauthn import PublicKeyCredentialRequestOptions

        parsed = _options(PublicKeyCredentialRequestOptions, public_key)
        with _converted(self.device):
            return _as_json(self._client().get_assertion(parsed).get_response(0))


def _has_terminal() -> bool:
    """Whether getpass can ask on a terminal: /dev/tty opens, or stdin is one."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return sys.stdin is not None and sys.stdin.isatty()
    os.close(fd)
    return True


def _retries_left(device: Any) -> str:
    """ ", N tries left ..." from the key (CTAP2 getPinRetries), or "" if it cannot say."""
    if device is None:
        return ""
    from fido2.ctap import CtapError
    from fido2.ctap2.base import Ctap2
    from fido2.ctap2.pin import ClientPin

    try:
        retries, _ = ClientPin(Ctap2(device)).get_pin_retries()
    except (CtapError, OSError, ValueError):
        return ""
    if retries <= 0:
        return ""  # the blocked message already says what to do
    return f": {retries} {'try' if retries == 1 else 'tries'} left before the key blocks its PIN"


def _options(kind: Any, public_key: Mapping[str, Any]) -> Any:
    """fido2's options object for the broker's JSON, which fido2 alone reads.

    Raises: InvalidResponse when fido2 cannot read them.
    """
    try:
        return kind.from_dict(public_key)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidResponse(f"the broker's WebAuthn options are malformed ({exc})") from None


def _as_json(response: Any) -> dict[str, object]:
    # fido2's response objects are Mappings whose bytes already encode as base64url.
    encoded: dict[str, object] = json.loads(json.dumps(dict(response), default=dict))
    return encoded
