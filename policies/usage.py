"""Usage rows from invocation records: tokens and exact cost per person, agent, delegation or
model, whatever order or batching the records came in and however often each was delivered.

`Tally` keeps one record per `requestId` (a record delivered twice, by S3 and CloudWatch
Logs or by an overlapping read, counts once; of two different records with one id the same
one is kept whichever came first). `summarize` groups what a tally holds. Records that are
not the broker's sessions are one `foreign` row, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Final, Literal

import msgspec

from policies.attribution import Attribution
from policies.invocation_log import InvocationRecord
from policies.prices import Price, Tokens, cost

By = Literal["person", "agent", "delegation", "model"]
GROUPINGS: Final[tuple[By, ...]] = ("person", "agent", "delegation", "model")


class UsageRow(msgspec.Struct, kw_only=True):
    """One group's use. The fields the grouping does not fix are None."""

    person: str | None = None
    """The email (or a shortened session name's `<start>...,<digest>`)."""
    agent: str | None = None
    """The agent's name; "" for the person's own use."""
    delegation: str | None = None
    """The delegation id; "" for the person's own use."""
    model: str | None = None
    """The model as the catalog names it (else as the record does)."""
    foreign: bool = False
    """Records of sessions that are not the broker's."""
    records: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Decimal = Decimal(0)
    """What the priced records cost, exactly (USD unless the price table says otherwise)."""
    unpriced_records: int = 0
    """Records whose cost is unknown (no price for their model or cache tokens): not in cost."""


class Tally:
    """The records seen so far, one per requestId."""

    def __init__(self) -> None:
        self._records: dict[str, InvocationRecord] = {}
        self.duplicates = 0

    def add(self, record: InvocationRecord) -> bool:
        """Keep the record; False when its requestId was already seen (counted once)."""
        held = self._records.get(record.request_id)
        if held is None:
            self._records[record.request_id] = record
            return True
        self.duplicates += 1
        # Two different records under one id: keep the same one whatever the order.
        if held != record and _rank(record) < _rank(held):
            self._records[record.request_id] = record
        return False

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> Iterable[InvocationRecord]:
        return self._records.values()


def _rank(record: InvocationRecord) -> bytes:
    return msgspec.json.encode(record)


_Key = tuple[bool, str, str, str, str]  # foreign, person, agent, delegation, model


def _key(by: By, who: Attribution, model: str) -> _Key:
    if who.kind == "foreign":
        return (True, "", "", "", "")
    if by == "person":
        return (False, who.person, "", "", "")
    if by == "agent":
        return (False, who.person, who.agent or "", "", "")
    if by == "delegation":
        return (False, who.person, who.agent or "", who.delegation or "", "")
    return (False, "", "", "", model)


def summarize(
    records: Iterable[InvocationRecord],
    by: By,
    attribute: Callable[[str], Attribution],
    price_of: Callable[[str], tuple[str, Price | None]],
) -> list[UsageRow]:
    """Rows grouped `by`: the largest cost first, then the most records; the foreign row last.

    `attribute` maps an `identity.arn` to who it names; `price_of` a record's modelId to the
    catalog's name for it and its price (both called once per distinct value).
    """
    who_of: dict[str, Attribution] = {}
    model_of: dict[str, tuple[str, Price | None]] = {}
    # Sums per (group, model, which cache kinds): cost is linear in tokens, so pricing sums
    # is exact and cheaper than pricing every record.
    sums: dict[tuple[_Key, str, bool, bool], list[int]] = {}
    for record in records:
        who = who_of.get(record.arn)
        if who is None:
            who = who_of[record.arn] = attribute(record.arn)
        priced = model_of.get(record.model_id)
        if priced is None:
            priced = model_of[record.model_id] = price_of(record.model_id)
        t = record.tokens
        slot = (_key(by, who, priced[0]), record.model_id, t.cache_read > 0, t.cache_write > 0)
        acc = sums.get(slot)
        if acc is None:
            acc = sums[slot] = [0, 0, 0, 0, 0]
        acc[0] += 1
        acc[1] += t.input
        acc[2] += t.output
        acc[3] += t.cache_read
        acc[4] += t.cache_write
    rows: dict[_Key, UsageRow] = {}
    for (key, model_id, _, _), (count, tin, tout, tcr, tcw) in sums.items():
        row = rows.get(key)
        if row is None:
            row = rows[key] = _row(by, key)
        row.records += count
        row.input_tokens += tin
        row.output_tokens += tout
        row.cache_read_tokens += tcr
        row.cache_write_tokens += tcw
        spent = cost(
            model_of[model_id][1], Tokens(input=tin, output=tout, cache_read=tcr, cache_write=tcw)
        )
        if spent is None:
            row.unpriced_records += count
        else:
            row.cost += spent
    return sorted(rows.values(), key=_order)


def _row(by: By, key: _Key) -> UsageRow:
    foreign, person, agent, delegation, model = key
    if foreign:
        return UsageRow(foreign=True)
    if by == "person":
        return UsageRow(person=person)
    if by == "agent":
        return UsageRow(person=person, agent=agent)
    if by == "delegation":
        return UsageRow(person=person, agent=agent, delegation=delegation)
    return UsageRow(model=model)


def _order(row: UsageRow) -> tuple[bool, Decimal, int, str, str, str, str]:
    return (
        row.foreign,
        -row.cost,
        -row.records,
        row.person or "",
        row.agent or "",
        row.delegation or "",
        row.model or "",
    )


def total(rows: Iterable[UsageRow]) -> UsageRow:
    """The sum of rows (every field a grouping fixes left None)."""
    out = UsageRow()
    for row in rows:
        out.records += row.records
        out.input_tokens += row.input_tokens
        out.output_tokens += row.output_tokens
        out.cache_read_tokens += row.cache_read_tokens
        out.cache_write_tokens += row.cache_write_tokens
        out.cost += row.cost
        out.unpriced_records += row.unpriced_records
    return out


def unpriced_models(
    records: Iterable[InvocationRecord], price_of: Callable[[str], tuple[str, Price | None]]
) -> list[str]:
    """The models (as the catalog names them) of records that could not be priced, sorted."""
    seen: dict[tuple[str, bool, bool], bool] = {}
    found: set[str] = set()
    for record in records:
        t = record.tokens
        flags = (record.model_id, t.cache_read > 0, t.cache_write > 0)
        if flags in seen:
            continue
        name, price = price_of(record.model_id)
        seen[flags] = cost(price, t) is None
        if seen[flags]:
            found.add(name)
    return sorted(found)
