"""The audit of exchanges: every outcome in the trail, without letting volume flood it.

- Credentials from a provider call: one `exchange_issued` event each (`source` "provider").
- Credentials from the cache: counted per delegation and models, and written as one
  `exchange_issued` event (`source` "cache", `count`) per interval: a busy agent refreshing
  every few seconds would otherwise push everything else out of the capped stream.
- Refusals: the first of a kind (per delegation, or per unverified caller, and problem) in
  an interval is written at once as `exchange_refused`; repeats in that interval are counted
  and written as one event with `count` when it ends. A refusal because Redis did not
  answer is always counted: writing it at once would wait on Redis again.

An event with `count` stands for that many exchanges from `since` to its `ts`. With
`interval_s` 0 every exchange is its own event (those refused because Redis did not answer
only in the log). Never a token or a credential: principals,
models, problem slugs, durations. A failed write never fails the exchange: it is logged,
and the log mirror (`vouch.audit`) holds the event all the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.audit import Audit
from broker.authorize import CredentialGrant, Principal
from broker.errors import StoreUnavailable, VouchError
from broker.request_context import current

log = logging.getLogger("vouch.exchange")
ISSUED, REFUSED = "exchange_issued", "exchange_refused"
MAX_TALLIES = 10_000
"""Counted kinds held at once; past it they are written early (memory stays bounded)."""
# Problem data safe and useful in the trail, by the name it gets there.
_PROBLEM_FIELDS = {
    "handle": "handle",  # token-revoked: what was revoked
    "aws_code": "aws_error",  # sts-rejected, sts-unavailable ("code" would be scrubbed)
    "reason": "check",  # policy-denied: the org policy check that failed
    "models": "denied",  # policy-denied: the models asked for beyond the grant
}

TallyKey = tuple[str, str | None, str | tuple[str, ...]]
"""(event, principal id or None, problem slug or models)."""


@dataclass
class _Tally:
    fields: dict[str, object]
    since: float
    count: int = 0


@dataclass
class Outcome:
    """One exchange as it goes: the pipeline fills in what it learns. As an async context
    manager (`ExchangeAudit.outcome`), it audits the exchange run inside: issued when it
    ends with a grant, refused (with the problem's slug) when it raises. A plain class, not
    a generator: this runs on every cache hit."""

    audit: ExchangeAudit
    asked: Sequence[str] | None
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    grant: CredentialGrant | None = None
    fresh: bool = False
    """The credentials came from a provider call made for this request."""

    async def __aenter__(self) -> Outcome:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> None:
        if exc is None:
            if self.grant is not None:
                await self.audit.issued(self, self.grant)
        elif isinstance(exc, VouchError):
            await self.audit.refused(self, exc.slug, exc.extra)
        elif isinstance(exc, Exception):  # a bug; not a cancelled request
            await self.audit.refused(self, "internal", {})


@dataclass
class ExchangeAudit:
    audit: Audit
    provider: str
    interval_s: float
    _tallies: dict[TallyKey, _Tally] = field(default_factory=dict)
    _written: set[TallyKey] = field(default_factory=set)
    """Refusals written at once this interval: their repeats are counted."""

    def outcome(self, asked: Sequence[str] | None) -> Outcome:
        """`async with` it around an exchange: its outcome is audited (see `Outcome`)."""
        return Outcome(self, asked)

    async def issued(self, outcome: Outcome, grant: CredentialGrant) -> None:
        if not outcome.fresh and self.interval_s > 0:  # a cache hit, counted
            key: TallyKey = (ISSUED, grant.principal.id, grant.models)
            tally = self._tallies.get(key)
            if tally is not None:  # the common case: nothing to build
                tally.count += 1
            else:
                await self._count(key, _issued(grant, "cache"))
            return
        source = "provider" if outcome.fresh else "cache"
        await self._write([(ISSUED, {**_issued(grant, source), **_timing(outcome)})])

    async def refused(self, outcome: Outcome, slug: str, extra: dict[str, object]) -> None:
        principal = outcome.principal
        fields: dict[str, object] = {**(_who(principal) if principal else {}), "problem": slug}
        fields |= {
            name: extra[key]
            for key, name in _PROBLEM_FIELDS.items()
            if isinstance(extra.get(key), str | list)
        }
        if outcome.asked is not None:
            fields["models"] = list(outcome.asked)
        key: TallyKey = (REFUSED, principal.id if principal else None, slug)
        if slug == StoreUnavailable.slug:
            # Redis just failed to answer: writing now would wait on it again and slow the
            # refusal down. Counted and written when the interval ends; with no interval,
            # in the log only.
            if self.interval_s > 0:
                await self._count(key, fields)
            else:
                self.audit.mirror(REFUSED, {"provider": self.provider, **fields})
            return
        if self.interval_s <= 0 or key not in self._written:
            self._written.add(key)
            await self._write([(REFUSED, {**fields, **_timing(outcome)})])
            return
        await self._count(key, fields)

    async def _count(self, key: TallyKey, fields: dict[str, object]) -> None:
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= MAX_TALLIES:
                await self.flush()
            tally = self._tallies[key] = _Tally(fields, time.time())
        tally.count += 1

    async def flush(self) -> None:
        """Write what was counted, one event per kind in one round trip, and start a new
        interval."""
        tallies, self._tallies, self._written = self._tallies, {}, set()
        if tallies:
            await self._write(
                [
                    (event, {**t.fields, "count": t.count, "since": round(t.since, 3)})
                    for (event, _, _), t in tallies.items()
                ]
            )

    async def run(self) -> None:
        """Flush every `interval_s`, until cancelled (the owner flushes once more at stop)."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def _write(self, events: list[tuple[str, dict[str, object]]]) -> None:
        try:
            await self.audit.record_many(
                [(event, {"provider": self.provider, **fields}) for event, fields in events]
            )
        except StoreUnavailable:
            log.warning("exchange audit: %d event(s) in the log only, not the stream", len(events))


def _issued(grant: CredentialGrant, source: str) -> dict[str, object]:
    return {
        **_who(grant.principal),
        "models": list(grant.models),
        "duration_s": grant.duration_s,
        "source": source,
    }


def _who(principal: Principal) -> dict[str, object]:
    if principal.access == "human":  # a person's own credentials: no delegation, no agent
        return {
            "access": "human",
            "sub": principal.sub,
            "person": principal.email,
            "cid": principal.key,
        }
    return {
        "dlg": principal.id,
        "agent": principal.agent,
        "sub": principal.sub,
        "person": principal.email,
        "cid": principal.key,
    }


def _timing(outcome: Outcome) -> dict[str, object]:
    request = current()
    took_ms = round((time.perf_counter() - outcome.started) * 1000, 2)
    return {"took_ms": took_ms, "request": request.id if request else None}
