"""A software CTAP2 authenticator that fido2's `Fido2Client` drives like a USB YubiKey.

It speaks CTAP2 CBOR over the CTAPHID_CBOR command of `fido2.ctap.CtapDevice`, so the
client code under test is exactly the code that talks to real hardware. Its keys live
in a 0600 JSON key file, which makes it fit for tests and demos and nothing else.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast, get_args

from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from ._ctap2 import Ctap2Authenticator, UvMode
from ._keyfile import KeyState, PinState, fingerprint, load, save
from ._pin import MIN_PIN_LENGTH, new_pin_state
from ._wire import ERR, decode_request, encode_response
from .errors import KeyFileError

__all__ = [
    "DEFAULT_PIN",
    "NOT_HARDWARE_WARNING",
    "SOFTWARE_AAGUID",
    "NotHardwareWarning",
    "SoftwareAuthenticator",
]

DEFAULT_PIN = "123456"
"""The PIN a new key file gets unless the caller chooses one (None: no PIN).

A well-known PIN costs nothing here: whoever can read the key file holds the private
keys and needs no PIN. It exists so that every login runs the real clientPIN protocol
and sets the UV flag the broker requires, without setup in tests and demos."""

SOFTWARE_AAGUID = bytes.fromhex("790e0a4e896248d8bea7ad25caab203f")
"""The model id every software authenticator reports, so a broker can recognise
(and in production refuse) credentials that were never on hardware."""

NOT_HARDWARE_WARNING = (
    "WARNING: this is a SOFTWARE authenticator, NOT a hardware security key. Its private "
    "keys sit in a file on this disk; use it only for tests and demos."
)


class NotHardwareWarning(UserWarning):
    """Emitted whenever a software authenticator is opened."""


def _initial_pin(pin: str) -> PinState:
    if len(pin) < MIN_PIN_LENGTH or len(pin.encode()) > 63 or "\0" in pin:
        raise ValueError(f"a PIN has {MIN_PIN_LENGTH} to 63 bytes and no NUL characters")
    return new_pin_state(pin)


def _checked_uv_mode(mode: str) -> UvMode:
    # Checked because any other string would quietly behave like "skip".
    if mode in get_args(UvMode):
        return cast(UvMode, mode)
    raise ValueError(f"uv_mode must be one of {get_args(UvMode)}, not {mode!r}")


class SoftwareAuthenticator(CtapDevice):
    """A CTAP2.1 authenticator whose state lives in the JSON key file at `path`.

    The file is created (mode 0600) on first use; a new file gets `pin` as its PIN
    (`DEFAULT_PIN` unless given; None leaves the PIN unset so a client can set one).
    An existing file keeps its own PIN and `pin` is ignored, as with a real key.
    Each command rereads the file if someone else saved it since, so instances and
    processes may take turns with one key file; truly simultaneous commands from two
    processes are not serialised (there is no cross-process lock).

    Test hooks, public and settable at any time:
      * `uv_mode`: "pin" (verify the PIN token, set UV), "fail" (reject it with
        PIN_AUTH_INVALID), "skip" (accept it but leave the UV flag unset);
      * `user_present`: False makes every touch time out (USER_ACTION_TIMEOUT);
      * `clone_to(path)`: a copy sharing credentials but with its own counter.

    Raises:
        KeyFileError: the key file is reachable by group/others, corrupt or unwritable.
        ValueError: a new file's `pin` is shorter than 4 or longer than 63 bytes, or
            `uv_mode` is not one of "pin", "fail", "skip".
    """

    def __init__(
        self,
        path: Path | str,
        *,
        pin: str | None = DEFAULT_PIN,
        uv_mode: UvMode = "pin",
        user_present: bool = True,
    ) -> None:
        self.path = Path(path).expanduser()
        _checked_uv_mode(uv_mode)
        warning = f"{NOT_HARDWARE_WARNING} Key file: {self.path}"
        warnings.warn(warning, NotHardwareWarning, stacklevel=2)
        state = load(self.path)
        if state is None:
            state = KeyState(SOFTWARE_AAGUID, pin=None if pin is None else _initial_pin(pin))
            save(self.path, state)
        self._on_disk = fingerprint(self.path)
        self._ctap2 = Ctap2Authenticator(state, self._save)
        self._ctap2.uv_mode = uv_mode
        self.user_present = user_present
        self._lock = threading.Lock()  # one command at a time, like a USB key

    @property
    def uv_mode(self) -> UvMode:
        """How a valid PIN token is treated (see the class docstring)."""
        return self._ctap2.uv_mode

    @uv_mode.setter
    def uv_mode(self, mode: UvMode) -> None:
        self._ctap2.uv_mode = _checked_uv_mode(mode)

    @property
    def aaguid(self) -> bytes:
        """The AAGUID this authenticator reports (`SOFTWARE_AAGUID` for new files)."""
        return self._ctap2.state.aaguid

    @property
    def capabilities(self) -> int:
        # NMSG: no CTAPHID_MSG, so fido2 never falls back to CTAP1/U2F with this key.
        return CAPABILITY.CBOR | CAPABILITY.WINK | CAPABILITY.NMSG

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: threading.Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        """Run one CTAPHID command; CTAP2 failures come back as a status byte.

        Raises:
            CtapError: INVALID_COMMAND for a CTAPHID command other than CBOR, PING, WINK.
            KeyFileError: the state could not be saved.
        """
        if cmd == CTAPHID.PING:
            return data
        if cmd == CTAPHID.WINK:
            return b""
        if cmd != CTAPHID.CBOR:
            raise CtapError(ERR.INVALID_COMMAND)
        with self._lock:
            self._reload_if_changed()
            try:
                command, params = decode_request(data)
                touch = self._touch(event, on_keepalive)
                return encode_response(self._ctap2.handle(command, params, touch))
            except CtapError as exc:
                return bytes([exc.code])

    def _touch(
        self, event: threading.Event | None, on_keepalive: Callable[[STATUS], None] | None
    ) -> Callable[[], None]:
        def touch() -> None:
            # A real key says UPNEEDED first; that is when the CLI prompts for a touch.
            if on_keepalive is not None:
                on_keepalive(STATUS.UPNEEDED)
            if event is not None and event.is_set():
                raise CtapError(ERR.KEEPALIVE_CANCEL)
            if not self.user_present:
                raise CtapError(ERR.USER_ACTION_TIMEOUT)

        return touch

    def _save(self) -> None:
        save(self.path, self._ctap2.state)
        self._on_disk = fingerprint(self.path)

    def _reload_if_changed(self) -> None:
        # Another instance or process (say the vouch CLI in an end-to-end test) may have
        # signed with this key since; signing from its stale counter would look cloned.
        if fingerprint(self.path) == self._on_disk:
            return
        state = load(self.path)
        if state is None:
            raise KeyFileError(f"key file {self.path} has disappeared")
        self._ctap2.state = state
        self._on_disk = fingerprint(self.path)

    def clone_to(self, path: Path | str) -> SoftwareAuthenticator:
        """A copy of this key at `path`, for proving that counter regressions are caught.

        Both hold the same credentials; each counts its signatures on its own, so the
        one that signs less falls behind what a server has seen.

        Raises:
            KeyFileError: `path` exists already or cannot be written.
        """
        target = Path(path).expanduser()
        if target.exists():
            raise KeyFileError(f"refusing to overwrite {target} with a clone")
        save(target, self._ctap2.state)
        return SoftwareAuthenticator(target, uv_mode=self.uv_mode, user_present=self.user_present)

    def close(self) -> None:
        """Nothing to release: every change is on disk when its command returns."""

    @classmethod
    def list_devices(cls) -> Iterator[SoftwareAuthenticator]:
        """None: software authenticators are opened by path, never discovered."""
        return iter(())
