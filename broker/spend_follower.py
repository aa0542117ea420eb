"""Delegation budgets enforced from Bedrock's invocation log in CloudWatch Logs.

One follower at a time across replicas (`broker.lease`, as for the AWS cut's writer) polls
`FilterLogEvents` on the stream `aws/bedrock/modelinvocations` every `spend_poll_interval_s`,
from a cursor kept in Redis, prices each record (`policies.prices`), attributes it to a
delegation (`policies.attribution`) and, when that delegation has a budget, adds the cost to
its spend. The cost is added in the same Lua script that records the record's `requestId`
as seen (SET NX), so a record is counted once whatever re-reads it: a restart, a second
replica that took the lease over mid-poll, or the look-back below. When a delegation's spend
reaches its budget, the broker revokes it through `Revoker.revoke_spent` (reason
budget-exceeded, actor vouch-broker; the AWS cut included where configured).

CloudWatch Logs filters by event timestamp (when Bedrock says the call was made), and an
event can be delivered minutes after later ones: each poll starts `lookback_s` before the
newest timestamp seen, and the seen `requestId`s make re-reading that window harmless.

Keys (one Redis Cluster hash slot, ``{spend}``):
``vouch:{spend}:cursor`` (newest event timestamp read, ms; for good),
``vouch:{spend}:lease`` (the follower's holder id, PX the lease),
``vouch:{spend}:seen:<requestId>`` (SET NX, `seen_ttl_s`, default one day),
``vouch:{spend}:over`` (set of delegations whose spend reached their budget, until revoked),
``vouch:{spend}:dlg:<id>`` (spend in 10^-12 units of the currency, integer; kept until the
delegation has been expired a day).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final, cast

import redis.asyncio as aioredis
from botocore.exceptions import BotoCoreError, ClientError

from broker.audit import Audit
from broker.delegation_store import KEEP_AFTER_EXPIRY_S, Delegation, DelegationStore
from broker.errors import NotFound, StoreUnavailable
from broker.lease import Lease
from broker.metrics import Metrics
from broker.revoke import Revoker
from broker.store import PREFIX, guard
from policies.attribution import BrokerRoles, attribute
from policies.budget import from_units, parse_budget, plain, to_units
from policies.catalog import Catalog
from policies.errors import InvalidRecord
from policies.invocation_log import STREAM, InvocationRecord, parse_record
from policies.prices import PriceTable, cost

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

log = logging.getLogger("vouch.spend")
CURSOR: Final = f"{PREFIX}{{spend}}:cursor"
LEASE: Final = f"{PREFIX}{{spend}}:lease"
OVER: Final = f"{PREFIX}{{spend}}:over"
"""Delegations whose spend reached their budget and that are not revoked yet."""

# KEYS[1]: the set of delegations over budget; then pairs (seen key, spend key).
# ARGV[1]: the seen keys' TTL; then per pair: units, spend TTL, budget units, delegation id.
# Per pair: the new spend, or -1 when the requestId was seen already (nothing added). A
# delegation whose spend reaches its budget joins the set in the same step, so a follower
# that stops before revoking it leaves the revocation to the next one. Lua's numbers are
# doubles (exact only to 2^53 units, $9,007), so the spend is read back as Redis's exact
# decimal text and compared as text: a longer numeral is larger, equal lengths compare
# character by character.
_ADD = """
local function at_least(a, b)
  if #a ~= #b then return #a > #b end
  return a >= b
end
local out = {}
for i = 2, #KEYS, 2 do
  local a = 2 + (i - 2) * 2
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('INCRBY', KEYS[i + 1], ARGV[a])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[a + 1])
    local spent = redis.call('GET', KEYS[i + 1])
    if at_least(spent, ARGV[a + 2]) then redis.call('SADD', KEYS[1], ARGV[a + 3]) end
    out[#out + 1] = spent
  else
    out[#out + 1] = -1
  end
end
return out
"""


def seen_key(request_id: str) -> str:
    return f"{PREFIX}{{spend}}:seen:{request_id}"


def spend_key(dlg_id: str) -> str:
    return f"{PREFIX}{{spend}}:dlg:{dlg_id}"


def log_group_of(source: str | None, default_group: str) -> str | None:
    """The CloudWatch Logs group a `usage_source` names, or None when it names none."""
    if source is None or not (source == "cloudwatch" or source.startswith("cloudwatch:")):
        return None
    return source.partition(":")[2] or default_group


@dataclass(frozen=True)
class Event:
    """One CloudWatch Logs event: its timestamp (ms) and the record text."""

    timestamp: int
    message: str


@dataclass
class Polled:
    """What one poll did, by outcome."""

    outcomes: dict[str, int] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)
    newest_ms: int | None = None

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n


class SpendFollower:
    """Follows the invocation log and revokes delegations that spent their budget.

    A plain class (not a dataclass): the web framework inspects the dataclasses it injects.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        logs: CloudWatchLogsClient | None,
        *,
        group: str | None,
        catalog: Catalog,
        prices: PriceTable,
        roles: BrokerRoles,
        store: DelegationStore,
        revoker: Revoker,
        audit: Audit,
        interval_s: float = 30.0,
        lookback_s: int = 600,
        seen_ttl_s: int = 86_400,
        page_size: int = 1000,
        metrics: Metrics | None = None,
    ) -> None:
        self.redis = redis
        self.logs = logs
        self.group = group
        """None: the usage source is not CloudWatch Logs; budgets are recorded, not enforced."""
        self.catalog = catalog
        self.prices = prices
        self.roles = roles
        self.store = store
        self.revoker = revoker
        self.audit = audit
        self.interval_s = interval_s
        self.lookback_ms = lookback_s * 1000
        self.seen_ttl_s = seen_ttl_s
        self.page_size = page_size
        """Events per FilterLogEvents page: what one script counts at a time."""
        # Three polls' worth: a poll that overruns keeps it; a stopped follower's passes on.
        self.lease = Lease(redis, LEASE, ttl_ms=int(max(1.0, 3 * interval_s) * 1000))
        self.metrics = metrics
        self.last_read: float | None = None
        """When this follower last read the log to its end (time.time())."""
        self._add = redis.register_script(_ADD)

    @property
    def enabled(self) -> bool:
        return self.group is not None and self.logs is not None

    async def holds_lease(self) -> bool:
        """Take or renew the lease; True while this follower holds it.

        Raises: StoreUnavailable.
        """
        async with guard("taking the spend follower lease"):
            return await self.lease.hold()

    async def release(self) -> None:
        """Give the lease up (a stopping replica), so another takes over at once."""
        async with guard("releasing the spend follower lease"):
            await self.lease.release()

    async def poll(self, *, now: float | None = None) -> Polled | None:
        """Read the log from the cursor to now and count what is new; None without the lease.

        Raises:
            StoreUnavailable: Redis did not answer. ClientError, BotoCoreError: CloudWatch
                Logs failed (nothing past the last page counted is lost: the cursor and the
                seen requestIds are written as each page is counted).
        """
        if not self.enabled or not await self.holds_lease():
            return None
        moment = time.time() if now is None else now
        async with guard("reading the spend cursor"):
            raw = await self.redis.get(CURSOR)
        cursor = int(raw) if raw is not None else int(moment * 1000) - self.lookback_ms
        start = max(0, cursor - self.lookback_ms)
        polled = Polled()
        await self.revoke_over(polled, now=moment)  # what a stopped follower left undone
        pages = _pages(
            self.logs, cast(str, self.group), start, int(moment * 1000) + 1, self.page_size
        )
        while True:
            page = await asyncio.to_thread(next, pages, None)
            if page is None:
                break
            await self.count(page, polled, now=moment)
            if polled.newest_ms is not None and polled.newest_ms > cursor:
                cursor = polled.newest_ms
                async with guard("recording the spend cursor"):
                    await self.redis.set(CURSOR, cursor)
            if not await self.holds_lease():  # another replica took over: let it go on
                return polled
        self.last_read = time.time()
        return polled

    async def count(self, events: Sequence[Event], polled: Polled, *, now: float) -> None:
        """Price and attribute `events`, add the new ones to their delegations' spend in one
        script, and revoke the delegations whose spend reached their budget.

        Raises: StoreUnavailable.
        """
        wanted: list[tuple[InvocationRecord, Delegation, int]] = []
        records: dict[str, Delegation | None] = {}
        for event in events:
            polled.newest_ms = max(polled.newest_ms or 0, event.timestamp)
            found = await self._priced(event, records, polled)
            if found is not None:
                wanted.append(found)
        if not wanted:
            return
        keys: list[str] = [OVER]
        args: list[int | str] = [self.seen_ttl_s]
        for record, dlg, units in wanted:
            assert dlg.budget is not None
            keys += [seen_key(record.request_id), spend_key(dlg.id)]
            keep = max(1, dlg.expires_at - int(now) + KEEP_AFTER_EXPIRY_S)
            args += [units, keep, to_units(parse_budget(dlg.budget)), dlg.id]
        async with guard("counting spend"):
            totals = [int(t) for t in await self._add(keys=keys, args=args)]
        for _, total in zip(wanted, totals, strict=True):
            polled.count("duplicate" if total < 0 else "counted")
        await self.revoke_over(polled, now=now)

    async def revoke_over(self, polled: Polled, *, now: float) -> None:
        """Revoke every delegation whose spend reached its budget (the set the counting
        script fills), then take it out of the set; one that fails stays for the next poll.

        Raises: StoreUnavailable, RevocationUnconfirmed.
        """
        async with guard("reading delegations over budget"):
            members = cast(list[bytes], list(await self.redis.smembers(OVER)))
        for member in sorted(members):
            dlg_id = member.decode()
            dlg = await self.store.get(dlg_id)
            if dlg is not None and dlg.budget is not None:
                total = int(await self.redis.get(spend_key(dlg_id)) or 0)
                if await self._revoke(dlg, total, now=now):
                    polled.revoked.append(dlg_id)
            async with guard("recording a budget revocation"):
                await self.redis.srem(OVER, dlg_id)

    async def _priced(
        self, event: Event, records: dict[str, Delegation | None], polled: Polled
    ) -> tuple[InvocationRecord, Delegation, int] | None:
        """The record, its delegation and its cost in units, when it counts against a
        budget; else None, with the outcome counted in `polled`."""
        try:
            record = parse_record(event.message)
        except InvalidRecord:
            polled.count("invalid")
            return None
        who = attribute(record.arn, self.roles)
        if who.delegation is None:
            polled.count("not-ours")
            return None
        if who.delegation not in records:
            records[who.delegation] = await self.store.get(who.delegation)
        dlg = records[who.delegation]
        if dlg is None or dlg.budget is None:
            polled.count("no-budget")
            return None
        amount = cost(self.prices.price_of(record.model_id, self.catalog)[1], record.tokens)
        if amount is None:
            polled.count("unpriced")
            log.warning(
                "a record of delegation %s has no price (model %s): not counted against its budget",
                dlg.id,
                record.model_id[:120],
            )
            return None
        return record, dlg, to_units(amount)

    async def _revoke(self, dlg: Delegation, total: int, *, now: float) -> bool:
        """Revoke a delegation whose spend reached its budget; False when there was nothing
        to revoke (expired, or revoked already)."""
        if dlg.expires_at <= now:  # spent after it ended (records arrive late): usage only
            return False
        if dlg.revoked_at is not None:  # ended already, by someone else: nothing to do
            return False
        spent = plain(from_units(total))
        try:
            done = await self.revoker.revoke_spent(dlg.id, spent=spent, now=time.time())
        except NotFound:
            return False
        if done.already_revoked:
            return False
        await self.audit.record(
            "budget_exceeded", dlg=dlg.id, agent=dlg.agent, spent=spent, budget=dlg.budget
        )
        if self.metrics is not None:
            self.metrics.budget_revocations.inc()
        log.info("delegation %s revoked: it spent %s of its %s budget", dlg.id, spent, dlg.budget)
        return True

    async def spent(self, dlg_id: str) -> Decimal:
        """What a delegation has spent so far, as counted (0 when nothing was)."""
        async with guard("reading spend"):
            units = await self.redis.get(spend_key(dlg_id))
        return from_units(int(units or 0))

    def _observe(self, polled: Polled | None) -> None:
        if self.metrics is None:
            return
        if polled is not None:
            for outcome, n in polled.outcomes.items():
                self.metrics.spend_records.labels(outcome).inc(n)
        if self.last_read is not None:
            self.metrics.spend_follower_lag.set(max(0.0, time.time() - self.last_read))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every `interval_s` while this replica holds the lease (others wait for it)."""
        backoff = self.interval_s
        try:
            while not stop.is_set():
                polled = None
                try:
                    polled = await self.poll()
                    backoff = self.interval_s
                except (ClientError, BotoCoreError) as exc:
                    backoff = min(300.0, backoff * 2)
                    log.warning("spend follower: CloudWatch Logs failed (%s)", _code(exc))
                except Exception as exc:  # Redis or a bug: keep following, say what happened
                    backoff = min(300.0, backoff * 2)
                    log.warning("spend follower: %s: %s", type(exc).__name__, exc)
                self._observe(polled)
                delay = backoff * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not security
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            with contextlib.suppress(StoreUnavailable, asyncio.CancelledError):
                await asyncio.shield(self.release())


def _pages(
    logs: CloudWatchLogsClient | None, group: str, start_ms: int, end_ms: int, size: int
) -> Iterator[list[Event]]:
    """The stream's events in [start_ms, end_ms), a page at a time (blocking: boto3)."""
    assert logs is not None
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=group,
        logStreamNames=[STREAM],
        startTime=start_ms,
        endTime=end_ms,
        PaginationConfig={"PageSize": size},
    )
    for page in pages:
        yield [
            Event(int(e.get("timestamp", 0)), e.get("message", "")) for e in page.get("events", [])
        ]


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
