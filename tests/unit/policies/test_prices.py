"""Prices in exact decimals: the built-in table, overrides, profiles, and unpriced records."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from policies import Catalog
from policies.errors import PolicyFileError
from policies.prices import Price, PriceTable, Tokens, cost, foundation_id

pytestmark = pytest.mark.unit


CATALOG = Catalog.builtin()
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
NUMBER = "must be a number of USD, 0 or more (e.g. 3.00)"
SONNET = Price(input=Decimal("3.00"), output=Decimal("15.00"))


def test_tokens_at_a_price_per_million_are_exact() -> None:
    assert cost(SONNET, Tokens(input=1234)) == Decimal("0.003702")
    assert cost(SONNET, Tokens(input=1234, output=567)) == Decimal("0.012207")
    nova_micro = PriceTable.builtin().prices["amazon.nova-micro-v1:0"]
    # 0.035 and 0.00875 per million: sums no binary float can hold.
    spent = cost(nova_micro, Tokens(input=3, output=7, cache_read=11))
    assert spent == Decimal("0.00000118125")  # (3 x 0.035 + 7 x 0.14 + 11 x 0.00875) / 10^6


def test_cache_tokens_without_a_cache_price_make_the_record_unpriced() -> None:
    assert cost(SONNET, Tokens(input=10, cache_read=5)) is None
    assert cost(SONNET, Tokens(input=10, cache_write=5)) is None
    assert cost(None, Tokens(input=10)) is None
    cached = Price(
        input=Decimal(3),
        output=Decimal(15),
        cache_read=Decimal("0.30"),
        cache_write=Decimal("3.75"),
    )
    assert cost(cached, Tokens(cache_read=1_000_000, cache_write=1_000_000)) == Decimal("4.05")


def test_every_catalog_model_has_a_builtin_price() -> None:
    table = PriceTable.builtin()
    models = {CATALOG.entry(i).model_id for i in CATALOG.ids}
    assert models == {m for m in models if m in table.prices}
    assert all(isinstance(p.input, Decimal) for p in table.prices.values())
    assert table.prices[HAIKU] == Price(
        input=Decimal("1.00"),
        output=Decimal("5.00"),
        cache_read=Decimal("0.10"),
        cache_write=Decimal("1.25"),
    )


@pytest.mark.parametrize(
    ("model_id", "named"),
    [
        (HAIKU, HAIKU),
        ("us." + HAIKU, "us." + HAIKU),
        ("global." + HAIKU, "global." + HAIKU),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us." + HAIKU, "us." + HAIKU),
        ("arn:aws:bedrock:us-east-1::foundation-model/" + HAIKU, HAIKU),
        ("us.claude-haiku-4-5", "us." + HAIKU),  # an alias
    ],
)
def test_profiles_and_arns_take_their_foundation_models_price(model_id: str, named: str) -> None:
    table = PriceTable.builtin()
    assert table.price_of(model_id, CATALOG) == (named, table.prices[HAIKU])


def test_a_model_the_catalog_does_not_know_is_unpriced_unless_the_file_names_it(
    tmp_path: Path,
) -> None:
    table = PriceTable.builtin()
    assert table.price_of("cohere.command-r-v1:0", CATALOG) == ("cohere.command-r-v1:0", None)
    file = tmp_path / "prices.toml"
    file.write_text('[models."cohere.command-r-v1:0"]\ninput = 0.5\noutput = 1.5\n')
    mine = PriceTable.load(file, base=table)
    assert mine.price_of("cohere.command-r-v1:0", CATALOG)[1] == Price(
        input=Decimal("0.5"), output=Decimal("1.5")
    )


def test_an_override_file_replaces_models_one_by_one_and_a_profile_entry_wins(
    tmp_path: Path,
) -> None:
    file = tmp_path / "prices.toml"
    file.write_text(
        f'[models."{HAIKU}"]\ninput = 0.9\noutput = 4.5\n\n'
        f'[models."us.{HAIKU}"]\ninput = 1.1\noutput = 5.5\ncache_read = 0.11\n'
    )
    mine = PriceTable.load(file, base=PriceTable.builtin())
    assert mine.price_of(HAIKU, CATALOG)[1] == Price(input=Decimal("0.9"), output=Decimal("4.5"))
    assert mine.price_of("us." + HAIKU, CATALOG)[1] == Price(
        input=Decimal("1.1"), output=Decimal("5.5"), cache_read=Decimal("0.11")
    )
    assert mine.price_of("global." + HAIKU, CATALOG)[1] == Price(
        input=Decimal("0.9"), output=Decimal("4.5")
    )
    # Everything else is still the built-in price.
    sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert mine.prices[sonnet] == PriceTable.builtin().prices[sonnet]


def test_a_price_file_with_problems_lists_each_with_its_location(tmp_path: Path) -> None:
    file = tmp_path / "prices.toml"
    file.write_text(
        'currency = "EUR"\nrates = 1\n'
        '[models."Not A Model"]\ninput = 1\noutput = 1\n'
        f'[models."{HAIKU}"]\ninput = -1\noutput = "5"\ncache_reed = 0.1\n'
        '[models."amazon.nova-lite-v1:0"]\noutput = nan\n'
    )
    with pytest.raises(PolicyFileError) as caught:
        PriceTable.load(file, base=PriceTable.builtin())
    assert [str(p) for p in caught.value.problems] == [
        f"{file}: rates: unknown key",
        f"{file}: models.\"Not A Model\": 'Not A Model' is not a model id or profile ARN",
        f'{file}: models."{HAIKU}".input: {NUMBER}',
        f'{file}: models."{HAIKU}".output: {NUMBER}',
        f'{file}: models."{HAIKU}".cache_reed: unknown key (did you mean cache_read?)',
        f'{file}: models."amazon.nova-lite-v1:0".output: {NUMBER}',
        f'{file}: models."amazon.nova-lite-v1:0".input: required',
        f"{file}: currency: EUR differs from the built-in USD",
    ]


def test_an_unreadable_or_non_toml_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="No such file"):
        PriceTable.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[models\n")
    with pytest.raises(PolicyFileError, match="not TOML"):
        PriceTable.load(bad)


def test_foundation_id_unwraps_model_and_profile_arns_only() -> None:
    app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
    assert foundation_id(app) == app
    assert foundation_id("arn:aws:bedrock:eu-west-1::foundation-model/" + HAIKU) == HAIKU
