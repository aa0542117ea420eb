"""What every command needs: the broker URL, the saved session, HTTP, the key, output."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TextIO

from vouch_delegate._errors import ConfigError, TokenInvalid, Unauthenticated
from vouch_delegate._token import SERVER_ENV
from vouch_delegate._transport import Transport, normalize_server, origin_of
from vouch_delegate.cli._exit import NotSignedIn
from vouch_delegate.cli._key import AUTHENTICATOR_ENV, Key
from vouch_delegate.cli._store import SavedSession, SessionStore


@dataclass
class Context:
    args: argparse.Namespace
    env: Mapping[str, str]
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
        if not saved.signed_in():
            raise NotSignedIn(f"your session for {self.server} has expired: run `vouch login`")
        return saved

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int] | None = None,
        signed_in: bool = True,
    ) -> dict[str, Any]:
        """A broker request, with the person's session as bearer when `signed_in`.

        Raises: NotSignedIn when the broker no longer accepts the session (not revoked:
        a revoked person is denied, exit 5), or the broker's typed errors.
        """
        token = self.session().token if signed_in else None
        try:
            return self.http.request(
                method, f"{self.server}{path}", token=token, body=body, query=query
            )
        except Unauthenticated as exc:
            # Revoked people and rejected key taps are denials (exit 5), not a stale login.
            if signed_in and (isinstance(exc, TokenInvalid) or type(exc) is Unauthenticated):
                raise NotSignedIn(
                    f"the broker refused your session ({exc.detail}): run `vouch login`"
                ) from exc
            raise

    def key(self) -> Key:
        """The security key named by --authenticator, $VOUCH_AUTHENTICATOR, or USB."""
        spec = self.args.authenticator or self.env.get(AUTHENTICATOR_ENV, "").strip() or "usb"
        return Key(spec, origin_of(self.server), self.env, self.err)

    def info(self, message: str) -> None:
        """A line for the person, on stderr so stdout stays clean for scripts."""
        self.err.write(message + "\n")
        self.err.flush()

    def emit(self, data: Any, text: str | None = None) -> None:
        """JSON on stdout with --json, else `text` (if any) on stdout."""
        if self.args.json:
            self.out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        elif text is not None:
            self.out.write(text + "\n")
        self.out.flush()


def when(epoch: float | None) -> str:
    """A local time with the time left, for people."""
    if not epoch:
        return "unknown"
    left = int(epoch - time.time())
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
    if left <= 0:
        return f"{stamp} (expired)"
    return f"{stamp} ({left // 3600}h{left % 3600 // 60:02d}m left)"
