"""FIDO2 authenticators for the vouch CLI: a USB key through fido2's CTAP HID, or a
software CTAP2 authenticator kept in a 0600 key file for tests and demos.

    device = open_authenticator("soft:/tmp/key.json")   # or "usb"
    client = make_client(device, "https://vouch.example.com", pin=ask_pin, on_prompt=print)
    result = client.make_credential(options)             # fido2 WebAuthn options
"""

from ._client import TOUCH_PROMPT, make_client, open_authenticator
from ._ctap2 import UvMode
from ._software import (
    DEFAULT_PIN,
    NOT_HARDWARE_WARNING,
    SOFTWARE_AAGUID,
    NotHardwareWarning,
    SoftwareAuthenticator,
)
from .errors import (
    AuthenticatorError,
    AuthenticatorSpecError,
    CeremonyError,
    CredentialExcluded,
    KeyFileError,
    NoAuthenticator,
    NoCredential,
    PinError,
    UserPresenceTimeout,
    from_client_error,
)

__all__ = [
    "DEFAULT_PIN",
    "NOT_HARDWARE_WARNING",
    "SOFTWARE_AAGUID",
    "TOUCH_PROMPT",
    "AuthenticatorError",
    "AuthenticatorSpecError",
    "CeremonyError",
    "CredentialExcluded",
    "KeyFileError",
    "NoAuthenticator",
    "NoCredential",
    "NotHardwareWarning",
    "PinError",
    "SoftwareAuthenticator",
    "UserPresenceTimeout",
    "UvMode",
    "from_client_error",
    "make_client",
    "open_authenticator",
]
