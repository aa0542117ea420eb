"""What is known about the request being served: its id and, once verified, who is asking.

The HTTP middleware opens one per request; the code that verifies a token names the
principal, so the access log and the audit can say who it was without reading tokens.
"""

from __future__ import annotations

import random
from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass
class RequestInfo:
    id: str
    principal: str | None = None
    """An agent sub or a person's email, once their token's signature checked out."""


def new_id() -> str:
    """16 hex digits. Random, to tell requests apart in logs across replicas; not a secret,
    so the cheap generator (no system call on the hot path)."""
    return f"{random.getrandbits(64):016x}"


_current: ContextVar[RequestInfo | None] = ContextVar("vouch_request", default=None)


def begin() -> tuple[RequestInfo, Token[RequestInfo | None]]:
    """A request's context, with a fresh id, until `end`. A client's own X-Request-Id is not
    taken: whatever a client sends stays out of the log (a proxy that wants to match its log
    lines to ours logs the id we answer with). Not a context manager: this runs on every
    request, and a generator-based one costs about a microsecond more."""
    info = RequestInfo(new_id())
    return info, _current.set(info)


def end(token: Token[RequestInfo | None]) -> None:
    _current.reset(token)


def current() -> RequestInfo | None:
    return _current.get()


def note_principal(who: str) -> None:
    """Name who is asking, once verified (no-op outside a request)."""
    info = _current.get()
    if info is not None:
        info.principal = who
