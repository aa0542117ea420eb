"""Usage rows: exact totals, one count per requestId, the same whatever the order or batching."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import Catalog
from policies.attribution import BrokerRoles, attribute
from policies.invocation_log import InvocationRecord, parse_all, parse_record
from policies.prices import Price, PriceTable
from policies.usage import GROUPINGS, By, Tally, UsageRow, summarize, total, unpriced_models
from tests.unit.policies.invocation_records import AGENT_ARN, PERSON_ARN, record

pytestmark = pytest.mark.unit


ROLES = BrokerRoles(
    account_id="123456789012", agents_role="vouch-agents", people_role="vouch-people"
)
CATALOG = Catalog.builtin()
PRICES = PriceTable.builtin()
OTHER_AGENT = (
    "arn:aws:sts::123456789012:assumed-role/vouch-agents/"
    "dlg_AAAAAAAAAAAAAAAA.writer.bob@example.com"
)
FOREIGN = "arn:aws:iam::123456789012:user/ci"
SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def price_of(model_id: str) -> tuple[str, Price | None]:
    return PRICES.price_of(model_id, CATALOG)


def rows(records: list[InvocationRecord], by: By) -> list[UsageRow]:
    tally = Tally()
    for r in records:
        tally.add(r)
    return summarize(tally.records(), by, lambda arn: attribute(arn, ROLES), price_of)


def parsed(**kwargs: object) -> InvocationRecord:
    return parse_record(json.dumps(record(**kwargs)))  # type: ignore[arg-type]


def test_rows_by_agent_with_exact_costs_own_use_and_the_foreign_row_last() -> None:
    records = [
        parsed(request_id="a", tokens_in=1234, tokens_out=0, model=SONNET),
        parsed(request_id="b", arn=PERSON_ARN, tokens_in=1000, tokens_out=10),
        parsed(request_id="c", arn=FOREIGN, tokens_in=5, tokens_out=5),
        parsed(request_id="d", arn=OTHER_AGENT, model="cohere.command-r-v1:0"),
    ]
    assert rows(records, "agent") == [
        UsageRow(
            person="alice@example.com",
            agent="researcher",
            records=1,
            input_tokens=1234,
            cost=Decimal("0.003702"),
        ),
        UsageRow(
            person="alice@example.com",
            agent="",
            records=1,
            input_tokens=1000,
            output_tokens=10,
            cost=Decimal("0.00105"),
        ),
        UsageRow(
            person="bob@example.com",
            agent="writer",
            records=1,
            input_tokens=1234,
            output_tokens=100,
            unpriced_records=1,
        ),
        UsageRow(foreign=True, records=1, input_tokens=5, output_tokens=5, cost=Decimal("0.00003")),
    ]
    assert unpriced_models(records, price_of) == ["cohere.command-r-v1:0"]


def test_rows_by_delegation_and_by_model() -> None:
    records = [
        parsed(request_id="a"),
        parsed(request_id="b", cache_read=1000, cache_write=1000),
        parsed(request_id="c", arn=OTHER_AGENT, model=SONNET, tokens_in=1, tokens_out=1),
    ]
    by_dlg = rows(records, "delegation")
    assert [(r.delegation, r.agent, r.person, r.records, r.cost) for r in by_dlg] == [
        (
            "dlg_3kq0b4Y2m9T1xVwA",
            "researcher",
            "alice@example.com",
            2,
            Decimal("0.004818"),
        ),  # (1234 + 500) + (1234 + 500 + 100 + 1250) micro-USD
        ("dlg_AAAAAAAAAAAAAAAA", "writer", "bob@example.com", 1, Decimal("0.000018")),
    ]
    by_model = rows(records, "model")
    assert [(r.model, r.records, r.cache_read_tokens) for r in by_model] == [
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", 2, 1000),
        (SONNET, 1, 0),
    ]
    assert total(by_model).cost == Decimal("0.004836")


def test_a_requestid_delivered_twice_counts_once() -> None:
    tally = Tally()
    assert tally.add(parsed(request_id="a")) is True
    assert tally.add(parsed(request_id="a")) is False
    assert (len(tally), tally.duplicates) == (1, 1)


# --- properties: order, batching and duplication do not change the totals ------------------

ARNS = st.sampled_from([AGENT_ARN, PERSON_ARN, OTHER_AGENT, FOREIGN])
MODELS = st.sampled_from(
    [
        SONNET,
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "amazon.nova-micro-v1:0",
        "cohere.command-r-v1:0",
    ]
)
COUNTS = st.integers(min_value=0, max_value=10**7)


@st.composite
def records_strategy(draw: st.DrawFn) -> list[InvocationRecord]:
    n = draw(st.integers(min_value=0, max_value=25))
    return [
        parsed(
            request_id=f"req-{i}",
            arn=draw(ARNS),
            model=draw(MODELS),
            tokens_in=draw(COUNTS),
            tokens_out=draw(COUNTS),
            cache_read=draw(st.one_of(st.none(), COUNTS)),
        )
        for i in range(n)
    ]


def blobs_of(records: list[InvocationRecord], cuts: list[int]) -> list[bytes]:
    """The records as JSON-lines files, cut at these positions (as S3 batches them)."""
    lines = [json.dumps(_wire(r)).encode() for r in records]
    edges = sorted({0, len(lines), *(c % (len(lines) + 1) for c in cuts)})
    return [b"\n".join(lines[a:b]) for a, b in itertools.pairwise(edges)]


def _wire(r: InvocationRecord) -> dict[str, object]:
    return record(
        request_id=r.request_id,
        arn=r.arn,
        model=r.model_id,
        tokens_in=r.tokens.input,
        tokens_out=r.tokens.output,
        cache_read=r.tokens.cache_read or None,
    )


@settings(max_examples=60, deadline=None)
@given(
    records_strategy(),
    st.randoms(use_true_random=False),
    st.lists(st.integers(min_value=0, max_value=100), max_size=6),
    st.lists(st.integers(min_value=0, max_value=100), max_size=10),
    st.sampled_from(GROUPINGS),
)
def test_totals_do_not_depend_on_order_batching_or_duplicates(
    records: list[InvocationRecord], rnd: object, cuts: list[int], repeats: list[int], by: By
) -> None:
    expected = rows(records, by)
    # Exactly the sum of each record priced alone (cost is linear, nothing is rounded).
    assert total(expected).records == len(records)
    shuffled = list(records)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    again = [records[i % len(records)] for i in repeats] if records else []
    delivered = [
        r for r in parse_all(blobs_of(shuffled + again, cuts)) if isinstance(r, InvocationRecord)
    ]
    assert rows(delivered, by) == expected


@settings(max_examples=30, deadline=None)
@given(records_strategy(), st.randoms(use_true_random=False))
def test_of_two_different_records_with_one_id_the_same_one_counts_whatever_the_order(
    records: list[InvocationRecord], rnd: object
) -> None:
    twins = [parsed(request_id=r.request_id, tokens_in=r.tokens.input + 1) for r in records]
    mixed = records + twins
    first = rows(mixed, "person")
    rnd.shuffle(mixed)  # type: ignore[attr-defined]
    assert rows(mixed, "person") == first
