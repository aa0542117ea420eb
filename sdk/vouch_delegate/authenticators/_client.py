"""Opening an authenticator from a CLI spec and building the fido2 client that drives it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapDevice
from fido2.ctap2.pin import ClientPin
from fido2.hid import ConnectionFailure, CtapHidDevice

from ._software import SoftwareAuthenticator
from .errors import AuthenticatorSpecError, NoAuthenticator

TOUCH_PROMPT = "Touch your security key"

_NO_KEY = (
    "no FIDO2 security key found on USB: insert your key and try again, "
    "or use --authenticator soft:PATH for a software key (tests and demos only)"
)


def open_authenticator(spec: str) -> CtapDevice:
    """The authenticator named by `spec`: "usb" (the first USB FIDO key) or "soft:PATH".

    Raises:
        NoAuthenticator: "usb" and no key is connected, or it cannot be opened.
        AuthenticatorSpecError: `spec` is neither form.
        KeyFileError: the software key file is unsafe, corrupt or unwritable.
    """
    if spec == "usb":
        return _first_usb_key()
    kind, _, path = spec.partition(":")
    if kind == "soft" and path:
        return SoftwareAuthenticator(Path(path))
    raise AuthenticatorSpecError(
        f"unknown authenticator {spec!r}: use 'usb' or 'soft:PATH' (e.g. soft:~/.vouch/key.json)"
    )


def _first_usb_key() -> CtapDevice:
    try:
        device = next(CtapHidDevice.list_devices(), None)
    except (OSError, ConnectionFailure) as exc:  # found but not usable: udev rules, often
        raise NoAuthenticator(
            f"cannot open the USB security key ({exc}); on Linux, check that "
            "your user may access /dev/hidraw* (the libfido2 udev rules)"
        ) from exc
    if device is None:
        raise NoAuthenticator(_NO_KEY)
    return device


class _PromptingInteraction(UserInteraction):
    """Hands PIN and touch requests to the CLI's callbacks; a library must not print."""

    def __init__(self, pin: Callable[[], str | None], on_prompt: Callable[[str], None]) -> None:
        self._pin = pin
        self._on_prompt = on_prompt

    def prompt_up(self) -> None:
        self._on_prompt(TOUCH_PROMPT)

    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return self._pin()

    def request_uv(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> bool:
        self._on_prompt(TOUCH_PROMPT)
        return True


def make_client(
    device: CtapDevice,
    origin: str,
    *,
    pin: Callable[[], str | None],
    on_prompt: Callable[[str], None],
) -> Fido2Client:
    """A WebAuthn client for `device` acting for `origin` (e.g. "https://vouch.example.com").

    `pin` is called when the key needs its PIN (return None to cancel); `on_prompt`
    receives `TOUCH_PROMPT` when the key waits for a touch. fido2 requires the server's
    RP ID to match the origin's host, and the origin to be https or http://localhost.
    """
    collector = DefaultClientDataCollector(origin)
    return Fido2Client(device, collector, _PromptingInteraction(pin, on_prompt))
