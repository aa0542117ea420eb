"""What every command needs: the broker URL, the saved session, the broker, the key, output."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TextIO, TypeVar

import msgspec

from vouch_delegate._client import BrokerClient
from vouch_delegate._errors import ConfigError, NotSignedIn, TokenInvalid, Unauthenticated
from vouch_delegate._token import SERVER_ENV
from vouch_delegate._transport import Transport, normalize_server, origin_of
from vouch_delegate.cli._key import AUTHENTICATOR_ENV, Key
from vouch_delegate.cli._store import KEYRING, SavedSession, SessionStore
from vouch_delegate.cli._text import terminal_safe

T = TypeVar("T")


@dataclass
class Context:
    # Not in repr: the environment holds VOUCH_PIN and maybe a token, the arguments a code.
    args: argparse.Namespace = field(repr=False)
    env: Mapping[str, str] = field(repr=False)
    out: TextIO
    err: TextIO
    http: Transport = field(default_factory=Transport)

    @cached_property
    def store(self) -> SessionStore:
        return SessionStore.from_env(self.env)

    @cached_property
    def saved(self) -> SavedSession | None:
        return self.store.load()

    @cached_property
    def server(self) -> str:
        """--server, else VOUCH_SERVER, else the server saved at enroll/login.

        Raises: ConfigError when none is known.
        """
        chosen = self.args.server or self.env.get(SERVER_ENV, "").strip()
        if chosen:
            return normalize_server(chosen)
        if self.saved is not None:
            return self.saved.server
        raise ConfigError(f"no broker URL: pass --server URL or set {SERVER_ENV}")

    def session(self) -> SavedSession:
        """The saved, unexpired session for this broker.

        Raises: NotSignedIn.
        """
        saved = self.saved
        if saved is None or saved.server != self.server:
            raise NotSignedIn(f"not signed in to {self.server}: run `vouch login`")
        if saved.kept_in == KEYRING and not saved.token and saved.signed_in(token_known=True):
            raise NotSignedIn(
                f"your session for {self.server} is in the OS keyring, which cannot be read "
                "here: run `vouch login`"
            )
        if not saved.token and saved.signed_out_at:
            raise NotSignedIn(f"you signed out of {self.server}: run `vouch login`")
        if not saved.signed_in():
            raise NotSignedIn(f"your session for {self.server} has expired: run `vouch login`")
        return saved

    def client(self, *, signed_in: bool = True) -> BrokerClient:
        """The broker, with the person's saved session as bearer when `signed_in`.

        Raises: NotSignedIn when `signed_in` and there is no usable session; its calls
        raise NotSignedIn when the broker no longer accepts the session.
        """
        if not signed_in:
            return BrokerClient(self.server, transport=self.http)
        return _PersonClient(self.server, session=self.session().token, transport=self.http)

    def key(self, spec: str | None = None) -> Key:
        """The security key `spec` names, else --authenticator, $VOUCH_AUTHENTICATOR, or USB."""
        chosen = (
            spec or self.args.authenticator or self.env.get(AUTHENTICATOR_ENV, "").strip() or "usb"
        )
        return Key(chosen, origin_of(self.server), self.env, self.err)

    def info(self, message: str) -> None:
        """A line for the person, on stderr so stdout stays clean for scripts."""
        self.err.write(terminal_safe(message) + "\n")
        self.err.flush()

    def emit(self, data: object, text: str | None = None) -> None:
        """JSON on stdout with --json (Structs as their JSON objects), else `text` if any."""
        if self.args.json:
            plain = msgspec.to_builtins(data)
            self.out.write(json.dumps(plain, indent=2, sort_keys=True) + "\n")
        elif text is not None:
            self.out.write(terminal_safe(text) + "\n")
        self.out.flush()


class _PersonClient(BrokerClient):
    """A client acting with the saved session: a session the broker refuses means log in."""

    def _call(
        self,
        method: str,
        path: str,
        reply: type[T],
        *,
        body: msgspec.Struct | None = None,
        token: str | None = None,
        query: Mapping[str, str | int] | None = None,
        retry: bool | None = None,
        proof: Callable[[str, str], str] | None = None,
    ) -> T:
        try:
            return super()._call(
                method, path, reply, body=body, token=token, query=query, retry=retry, proof=proof
            )
        except Unauthenticated as exc:
            # Revoked people and rejected key taps are denials (exit 5), not a stale login.
            with_session = token is not None and token == self.session
            if with_session and (isinstance(exc, TokenInvalid) or type(exc) is Unauthenticated):
                raise NotSignedIn(
                    f"the broker refused your session ({exc.detail}): run `vouch login`"
                ) from exc
            raise


def when(epoch: float | None) -> str:
    """A local time with the time left, for people."""
    if not epoch:
        return "unknown"
    left = int(epoch - time.time())
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
    if left <= 0:
        return f"{stamp} (expired)"
    return f"{stamp} ({left // 3600}h{left % 3600 // 60:02d}m left)"
