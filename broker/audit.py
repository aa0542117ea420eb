"""The audit trail: one capped Redis stream entry per security-relevant step.

Entries carry who, what and why, never a token, key or secret: `record` accepts only
plain fields and drops any whose name suggests a secret, as a last line of defence.
The stream holds text; a field that is not text (a time, a flag, a list of models) is
written as JSON and declared in `FIELD_TYPES`, so readers get it back with its type.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from broker.store import PREFIX, guard, text
from policies.identity import AGENT_PREFIX

STREAM = PREFIX + "audit"
_SECRET_WORDS = ("token", "secret", "password", "assertion", "signature", "code", "key_material")
log = logging.getLogger("vouch.audit")

FIELD_TYPES: Final[Mapping[str, Any]] = {
    "ts": float,
    "uv": bool,
    "software": bool,
    "expires_at": int,
    "revoked_at": int,
    "counter": int,
    "stored_counter": int,
    "models": list[str],
    "denied": list[str],
    "cancelled_invites": list[str],
    "duration_s": int,
    "took_ms": float,
    "count": int,
    "since": float,
}
"""Fields whose values are not text: written as JSON, read back as these types. Every other
field is text."""

SCAN_BUDGET: Final = 10_000
"""Entries one filtered read looks at, at most: a page may come back short, with `next`."""
_CHUNK = 500
_MAX_SEQ = 2**64 - 1


def scrub(fields: Mapping[str, object]) -> dict[str, str]:
    """Fields as strings, without any whose name looks like it holds a secret.

    Raises:
        TypeError: a value that is not text in a field `FIELD_TYPES` does not declare.
    """
    clean: dict[str, str] = {}
    for name, value in fields.items():
        if value is None or any(word in name.lower() for word in _SECRET_WORDS):
            continue
        if isinstance(value, str):
            clean[name] = value
        elif name in FIELD_TYPES:
            clean[name] = msgspec.json.encode(value).decode()
        else:
            raise TypeError(f"audit field {name!r} is not text: declare its type in FIELD_TYPES")
    return clean


def typed(entry_id: str, fields: Mapping[str, str]) -> dict[str, object]:
    """An entry as readers see it: its id, then each field with its declared type (a value
    that does not parse as its type, from an older writer, stays text)."""
    event: dict[str, object] = {"id": entry_id}
    for name, value in fields.items():
        kind = FIELD_TYPES.get(name)
        if kind is None:
            event[name] = value
            continue
        try:
            event[name] = msgspec.json.decode(value, type=kind)
        except msgspec.DecodeError:
            event[name] = value
    return event


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events a reader wants; all given conditions must hold."""

    since: float | None = None
    """Unix time: only events from then on."""
    person: str | None = None
    """An email in normal form: events by, about or on behalf of that person."""
    agent: str | None = None
    """An agent sub (`agent.<name>.<email>`, normal form) or a bare agent name."""

    @property
    def narrows(self) -> bool:
        """Whether some events in the time range may be left out."""
        return self.person is not None or self.agent is not None

    def matches(self, event: Mapping[str, object]) -> bool:
        return (self.person is None or _about_person(event, self.person)) and (
            self.agent is None or _about_agent(event, self.agent)
        )


def _about_person(event: Mapping[str, object], email: str) -> bool:
    if email in (event.get("actor"), event.get("subject"), event.get("person")):
        return True
    return any(_sub_parts(event.get(f))[1] == email for f in ("sub", "subject"))


def _about_agent(event: Mapping[str, object], agent: str) -> bool:
    if agent.startswith(AGENT_PREFIX):
        if agent in (event.get("sub"), event.get("subject")):
            return True
        name, email = _sub_parts(agent)
        owner = event.get("person", event.get("actor"))
        return event.get("agent") == name and owner == email
    return event.get("agent") == agent or agent in (
        _sub_parts(event.get("sub"))[0],
        _sub_parts(event.get("subject"))[0],
    )


def _sub_parts(value: object) -> tuple[str | None, str | None]:
    """(name, email) of an agent sub in normal form, else (None, None)."""
    if not isinstance(value, str) or not value.startswith(AGENT_PREFIX):
        return None, None
    name, dot, email = value[len(AGENT_PREFIX) :].partition(".")
    return (name, email) if dot and email else (None, None)


def entry_before(entry_id: str) -> str | None:
    """The greatest stream id below `entry_id` (None below the first possible one): where
    the next page starts, with `before` inclusive."""
    ms, _, seq = entry_id.partition("-")
    if int(seq or 0) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-{_MAX_SEQ}" if int(ms) > 0 else None


class AuditPage(msgspec.Struct):
    events: list[dict[str, object]]
    """Newest first."""
    next: str | None
    """Pass as `before` for the following page; None: nothing older matches."""


class Audit:
    """Appends events to the capped `vouch:audit` stream and mirrors them to the log."""

    def __init__(self, redis: aioredis.Redis, *, max_len: int) -> None:
        self.redis = redis
        self.max_len = max_len

    async def record(self, event: str, **fields: object) -> None:
        """Raises: StoreUnavailable (the log mirror has the event all the same)."""
        entry = self._entry(event, fields)
        async with guard("writing the audit trail"):
            await self.redis.xadd(STREAM, entry, maxlen=self.max_len, approximate=True)  # type: ignore[arg-type]

    async def record_many(self, events: Sequence[tuple[str, Mapping[str, object]]]) -> None:
        """Several events in one round trip, in order.

        Raises: StoreUnavailable (the log mirror has the events all the same).
        """
        entries = [self._entry(event, fields) for event, fields in events]
        async with guard("writing the audit trail"):
            pipe = self.redis.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(STREAM, entry, maxlen=self.max_len, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()

    def mirror(self, event: str, fields: Mapping[str, object]) -> None:
        """The event in the log only (`vouch.audit`): for when the stream cannot be waited on."""
        self._entry(event, fields)

    @staticmethod
    def _entry(event: str, fields: Mapping[str, object]) -> dict[str, str]:
        entry = {"event": event, "ts": f"{time.time():.3f}", **scrub(fields)}
        log.info("audit %s", event, extra={"audit": entry})
        return entry

    async def read(
        self, *, count: int = 100, before: str = "+", where: AuditFilter | None = None
    ) -> AuditPage:
        """Newest first: at most `count` events at or before stream id `before` that match
        `where`, looking at no more than `SCAN_BUDGET` entries.

        Raises: StoreUnavailable.
        """
        where = where or AuditFilter()
        low = "-" if where.since is None else str(max(0, int(where.since * 1000)))
        chunk = max(count, _CHUNK) if where.narrows else count
        events: list[dict[str, object]] = []
        cursor: str | None = before
        scanned = 0
        while cursor is not None and scanned < SCAN_BUDGET:
            async with guard("reading the audit trail"):
                rows: Any = await self.redis.xrevrange(STREAM, max=cursor, min=low, count=chunk)
            scanned += len(rows)
            for rid, data in rows:
                event = typed(text(rid), {text(k): text(v) for k, v in data.items()})
                if where.matches(event):
                    events.append(event)
                    if len(events) == count:
                        return AuditPage(events, entry_before(text(rid)))
            cursor = entry_before(text(rows[-1][0])) if len(rows) == chunk else None
        return AuditPage(events, cursor)
