"""Usage reports: who spent what on Bedrock, from its model invocation logs.

Reads a source (`broker.usage_sources`), parses the records (`policies.invocation_log`),
keeps one per requestId within the time range, attributes each session ARN to a person,
agent and delegation (`policies.attribution`), prices the tokens (`policies.prices`) and
groups them (`policies.usage`). A shortened session name holds only the start of its
person's email: a person's own report recognises theirs by the email's digest, an admin's
report looks the delegation up (its record lives a day past its end) and otherwise shows
the start and digest. Used by `vouch-broker usage` and `GET /v1/usage`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Final

import msgspec

from broker.delegation_store import DelegationStore
from broker.errors import StoreUnavailable
from broker.settings import AwsSettings, Settings
from broker.store import connect
from broker.usage_sources import read
from policies.attribution import Attribution, BrokerRoles, attribute
from policies.catalog import Catalog
from policies.errors import InvalidRecord
from policies.invocation_log import parse_all
from policies.org import OrgPolicy
from policies.prices import Price, PriceTable
from policies.usage import By, Tally, UsageRow, summarize, total, unpriced_models

log = logging.getLogger("vouch.usage")

MAX_SINCE_S: Final = 400 * 86_400
"""The longest range a report reads (a bound on what one request makes the broker read)."""
FOREIGN: Final = "(not vouch)"
SELF: Final = "(self)"

Lookup = Callable[[str], Awaitable[str | None]]
"""A delegation id -> its person's email, when the broker still has its record."""


class Row(msgspec.Struct, kw_only=True):
    """One group's use, as reports show it (cost exact, in fixed-point decimal)."""

    person: str | None
    agent: str | None
    delegation: str | None
    model: str | None
    foreign: bool
    records: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: str
    """Exact, in `currency`, of the priced records only."""
    unpriced_records: int


class Report(msgspec.Struct, kw_only=True):
    """A usage report: rows grouped `by`, their total, and what could not be counted."""

    by: By
    since: datetime
    until: datetime
    currency: str
    rows: list[Row]
    total: Row
    unpriced_models: list[str]
    """Models of records that could not be priced (add them to the prices file)."""
    duplicates: int
    """Deliveries of a requestId already counted."""
    invalid: int
    """Lines that are not invocation log records (not counted)."""
    email: str | None = None
    """Whose report this is; None: everyone's."""


def roles_of(org: OrgPolicy) -> BrokerRoles:
    """The broker's roles, as `attribute` needs them."""
    return BrokerRoles(
        account_id=org.aws.account_id,
        agents_role=org.aws.role_name,
        people_role=org.aws.people_role_name,
    )


def plain(amount: Decimal) -> str:
    """An exact amount in fixed-point notation, without trailing zeros ("0.003702")."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def rounded(amount: Decimal, places: int = 6) -> str:
    """An amount for display, to `places` decimals."""
    return format(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN), "f")


@dataclass
class Collected:
    """The distinct records of a range, and what was skipped on the way."""

    tally: Tally
    invalid: int
    first_error: str | None


def collect(blobs: Iterable[bytes], *, start: datetime, end: datetime) -> Collected:
    """The records timestamped in [start, end) among these contents, one per requestId."""
    tally, invalid, first = Tally(), 0, None
    for item in parse_all(blobs):
        if isinstance(item, InvalidRecord):
            invalid += 1
            first = first or item.reason
        elif start <= item.timestamp < end:
            tally.add(item)
    return Collected(tally, invalid, first)


@dataclass
class UsageReports:
    """Reports over one configured source (or any source the caller names)."""

    catalog: Catalog
    prices: PriceTable
    roles: BrokerRoles
    aws: AwsSettings
    source: str | None

    async def report(
        self,
        *,
        since_s: int,
        by: By,
        email: str | None,
        lookup: Lookup | None = None,
        source: str | None = None,
        now: datetime | None = None,
    ) -> tuple[Report, str | None]:
        """The report for the last `since_s` seconds: one person's (`email`) or everyone's,
        and the first invalid line's reason (None if every line was a record).

        Raises:
            SourceError: the source cannot be read.
        """
        spec = source or self.source or ""
        end = now or datetime.now(UTC)
        start = end - timedelta(seconds=since_s)
        got = await asyncio.to_thread(
            lambda: collect(read(spec, start=start, end=end, aws=self.aws), start=start, end=end)
        )
        who = await self._attribute(got.tally, email, lookup)
        records = [r for r in got.tally.records() if email is None or who[r.arn].is_of(email)]
        price_cache: dict[str, tuple[str, Price | None]] = {}

        def price_of(model_id: str) -> tuple[str, Price | None]:
            if model_id not in price_cache:
                price_cache[model_id] = self.prices.price_of(model_id, self.catalog)
            return price_cache[model_id]

        rows = summarize(records, by, who.__getitem__, price_of)
        report = Report(
            by=by,
            since=start,
            until=end,
            currency=self.prices.currency,
            rows=[_row(row) for row in rows],
            total=_row(total(rows)),
            unpriced_models=unpriced_models(records, price_of),
            duplicates=got.tally.duplicates,
            invalid=got.invalid,
            email=email,
        )
        return report, got.first_error

    async def _attribute(
        self, tally: Tally, email: str | None, lookup: Lookup | None
    ) -> dict[str, Attribution]:
        """Every distinct ARN's attribution, shortened names completed where possible."""
        who: dict[str, Attribution] = {}
        for record in tally.records():
            if record.arn not in who:
                who[record.arn] = attribute(record.arn, self.roles)
        for arn, found in who.items():
            if not found.shortened:
                continue
            if email is not None:
                if found.is_of(email):
                    who[arn] = found.with_email(email)
            elif lookup is not None and found.delegation:
                owner = await lookup(found.delegation)
                if owner is not None and found.is_of(owner):
                    who[arn] = found.with_email(owner)
        return who


def load_prices(settings: Settings) -> PriceTable:
    """The built-in prices, with the settings' prices file on top.

    Raises:
        PolicyFileError: the file has problems (each with its location).
    """
    prices = PriceTable.builtin()
    if settings.prices_file:
        prices = PriceTable.load(Path(settings.prices_file), base=prices)
    return prices


def reports_for(settings: Settings, catalog: Catalog, org: OrgPolicy) -> UsageReports:
    """Usage reports as the settings configure them."""
    return UsageReports(
        catalog=catalog,
        prices=load_prices(settings),
        roles=roles_of(org),
        aws=settings.aws,
        source=settings.usage_source,
    )


async def usage_from_host(
    settings: Settings, catalog: Catalog, org: OrgPolicy, *, source: str, since_s: int, by: By
) -> tuple[Report, str | None]:
    """What `vouch-broker usage` does: everyone's report from `source`; shortened session
    names are looked up in Redis when it answers (else left as their email's start).

    Raises:
        PolicyFileError: the prices file has problems.
        SourceError: the source cannot be read.
    """
    reports = reports_for(settings, catalog, org)
    redis = connect(settings.redis_url, timeout_s=2.0)
    store = DelegationStore(redis)
    unreachable: list[str] = []

    async def lookup(dlg_id: str) -> str | None:
        if unreachable:
            return None
        try:
            found = await store.get(dlg_id)
        except StoreUnavailable as exc:
            unreachable.append(str(exc))
            log.warning("shortened session names stay unresolved: %s", exc)
            return None
        return found.email if found else None

    try:
        return await reports.report(
            since_s=since_s, by=by, email=None, lookup=lookup, source=source
        )
    finally:
        await redis.aclose()


def _row(row: UsageRow) -> Row:
    return Row(
        person=row.person,
        agent=row.agent,
        delegation=row.delegation,
        model=row.model,
        foreign=row.foreign,
        records=row.records,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
        cost=plain(row.cost),
        unpriced_records=row.unpriced_records,
    )


# --- output ---------------------------------------------------------------------------------

KEY_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "person": ("PERSON",),
    "agent": ("PERSON", "AGENT"),
    "delegation": ("DELEGATION", "PERSON", "AGENT"),
    "model": ("MODEL",),
}
"""The columns that name a row's group, per grouping (`key_cells` fills them)."""
NUMBER_COLUMNS: Final = ("RECORDS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE")
"""The counts `number_cells` gives first (then the cost and the unpriced records)."""
CSV_COLUMNS: Final = (
    "person",
    "agent",
    "delegation",
    "model",
    "foreign",
    "records",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "unpriced_records",
)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_cells(by: By, row: Row) -> list[str]:
    """A row's group under `KEY_COLUMNS[by]` (the table, the usage page)."""
    if row.foreign:
        return [FOREIGN] + [""] * (len(KEY_COLUMNS[by]) - 1)
    own = row.agent == ""
    cells = {
        "PERSON": row.person or "",
        "AGENT": SELF if own else (row.agent or ""),
        "DELEGATION": "-" if own else (row.delegation or ""),
        "MODEL": row.model or "",
    }
    return [cells[name] for name in KEY_COLUMNS[by]]


def number_cells(row: Row) -> list[str]:
    """A row's counts, its cost rounded to 6 decimals (\"-\": none priced), its unpriced records."""
    priced = row.records - row.unpriced_records
    cost = rounded(Decimal(row.cost)) if priced or not row.records else "-"
    return [
        str(row.records),
        str(row.input_tokens),
        str(row.output_tokens),
        str(row.cache_read_tokens),
        str(row.cache_write_tokens),
        cost,
        str(row.unpriced_records),
    ]


def table(report: Report) -> str:
    """The report as a text table, costs rounded to 6 decimals, with its notes."""
    heads = [*KEY_COLUMNS[report.by], *NUMBER_COLUMNS, f"COST ({report.currency})", "UNPRICED"]
    keys = len(KEY_COLUMNS[report.by])
    body = [key_cells(report.by, row) + number_cells(row) for row in report.rows]
    body.append(["TOTAL"] + [""] * (keys - 1) + number_cells(report.total))
    widths = [max(len(line[i]) for line in [heads, *body]) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        text = [
            c.ljust(w) if i < keys else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(text).rstrip()

    whose = f" of {report.email}" if report.email else ""
    out = [
        f"Bedrock usage{whose} from {_stamp(report.since)} to {_stamp(report.until)}, "
        f"by {report.by}:",
        line(heads),
        *(line(cells) for cells in body),
    ]
    out.extend(notes(report))
    return "\n".join(out) + "\n"


def notes(report: Report) -> list[str]:
    """What a reader must know beside the numbers: unpriced models, skipped lines."""
    out = []
    if report.unpriced_models:
        out.append(
            f"unpriced (tokens counted, cost unknown): {', '.join(report.unpriced_models)};"
            " add them to the prices file (VOUCH_PRICES_FILE)"
        )
    if report.duplicates:
        out.append(f"{_count(report.duplicates, 'repeated delivery')} of a requestId not counted")
    if report.invalid:
        out.append(f"{_count(report.invalid, 'line')} not an invocation log record (not counted)")
    return out


def _count(n: int, what: str) -> str:
    plural = what[:-1] + "ies" if what.endswith("y") else what + "s"
    return f"{n} {what if n == 1 else plural}"


def csv_text(report: Report) -> str:
    """The rows as CSV (no total), exact costs."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        values = msgspec.structs.asdict(row)
        writer.writerow(
            [
                "true" if v is True else "false" if v is False else "" if v is None else v
                for v in (values[c] for c in CSV_COLUMNS)
            ]
        )
    return buffer.getvalue()
