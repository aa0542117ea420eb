"""What is known about the request being served: its id and, once verified, who is asking.

The HTTP middleware opens one per request; the code that verifies a token names the
principal, so the access log and the audit can say who it was without reading tokens.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


@contextmanager
def opened() -> Iterator[RequestInfo]:
    """A request's context while it is served, with a fresh id. A client's own X-Request-Id
    is not taken: whatever a client sends stays out of the log (a proxy that wants to match
    its log lines to ours logs the id we answer with)."""
    info = RequestInfo(new_id())
    token = _current.set(info)
    try:
        yield info
    finally:
        _current.reset(token)


def current() -> RequestInfo | None:
    return _current.get()


def note_principal(who: str) -> None:
    """Name who is asking, once verified (no-op outside a request)."""
    info = _current.get()
    if info is not None:
        info.principal = who
