"""Bedrock prices per model in exact decimals, and what a number of tokens costs.

The built-in table (`policies/data/prices.toml`, whose numbers are examples to check) is
read with every number as a `decimal.Decimal`; an org's own file replaces its entries model
by model. Money is never a binary float: a cost is tokens x price / 1,000,000, computed
exactly, and rounded only where it is displayed.
"""

from __future__ import annotations

import decimal
import functools
import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec

from policies._toml import suggest
from policies.catalog import APP_PROFILE_ARN, MODEL_ID, Catalog
from policies.errors import PolicyFileError, Problem, UnknownModel

PER_TOKENS: Final = 1_000_000
"""Prices are per this many tokens."""
_FIELDS: Final = ("input", "output", "cache_read", "cache_write")
_REQUIRED: Final = ("input", "output")
# Products of token counts (< 10^15) and prices (a few dozen digits at most) stay exact:
# the traps make any rounding an error instead of a silent loss of cents.
_EXACT: Final = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.Rounded])
_MODEL_ARN = re.compile(
    r"arn:aws[a-z-]*:bedrock:[a-z0-9-]*:[0-9]{0,12}:(?:foundation-model|inference-profile)/(.+)"
)


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """USD per 1,000,000 tokens of each kind; None: the model has no price for that kind."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None


class Tokens(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts of one call, or sums of many."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write=self.cache_write + other.cache_write,
        )


def cost(price: Price | None, tokens: Tokens) -> Decimal | None:
    """What these tokens cost in USD, exactly; None when unpriced (no price for the model,
    or cache tokens of a kind it has no price for)."""
    if price is None:
        return None
    if (tokens.cache_read and price.cache_read is None) or (
        tokens.cache_write and price.cache_write is None
    ):
        return None
    with decimal.localcontext(_EXACT):
        total = tokens.input * price.input + tokens.output * price.output
        if tokens.cache_read:
            total += tokens.cache_read * (price.cache_read or 0)
        if tokens.cache_write:
            total += tokens.cache_write * (price.cache_write or 0)
        return total / PER_TOKENS


def foundation_id(model_id: str) -> str:
    """A record's modelId as the catalog names it: a foundation-model or inference-profile
    ARN becomes its id; anything else (an id, an application profile ARN) is kept."""
    match = _MODEL_ARN.fullmatch(model_id)
    return match[1] if match else model_id


class PriceTable:
    """Prices by model id, profile id or application profile ARN. Build it with `builtin()`
    or `load()`."""

    def __init__(self, prices: Mapping[str, Price], currency: str = "USD") -> None:
        self.prices = dict(prices)
        self.currency = currency

    @classmethod
    def builtin(cls) -> PriceTable:
        """The table shipped with the package (examples: see its header)."""
        return _builtin()

    @classmethod
    def load(cls, path: Path, base: PriceTable | None = None) -> PriceTable:
        """The prices in the TOML file at path, on top of base (its entries win, model by model).

        Raises:
            PolicyFileError: every problem in the file, each with its location.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise PolicyFileError(str(path), [Problem(str(path), "", str(reason))]) from exc
        return cls.from_text(text, str(path), base)

    @classmethod
    def from_text(cls, text: str, file: str, base: PriceTable | None = None) -> PriceTable:
        """The prices in TOML text (`file` names it in problems), on top of base.

        Raises:
            PolicyFileError: not TOML, or every problem with its location.
        """
        try:
            data = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyFileError(file, [Problem(file, "", f"not TOML: {exc}")]) from exc
        problems: list[Problem] = []
        currency, prices = _parse(data, file, problems)
        if base is not None and currency != base.currency:
            problems.append(
                Problem(file, "currency", f"{currency} differs from the built-in {base.currency}")
            )
        if problems:
            raise PolicyFileError(file, problems)
        return cls({**(base.prices if base else {}), **prices}, currency)

    def price_of(self, model_id: str, catalog: Catalog) -> tuple[str, Price | None]:
        """(the model as the catalog names it, its price or None) for a record's modelId:
        a profile's own entry, else its foundation model's."""
        name = foundation_id(model_id)
        try:
            canonical = catalog.resolve(name)
        except UnknownModel:  # a model the catalog does not know: priced by its own id
            return name, self.prices.get(name)
        own = self.prices.get(canonical)
        if own is not None:
            return canonical, own
        return canonical, self.prices.get(catalog.entry(canonical).model_id)


@functools.cache
def _builtin() -> PriceTable:
    resource = importlib.resources.files("policies") / "data" / "prices.toml"
    return PriceTable.from_text(resource.read_text(encoding="utf-8"), "policies/data/prices.toml")


def _parse(
    data: Mapping[str, Any], file: str, problems: list[Problem]
) -> tuple[str, dict[str, Price]]:
    for key in data:
        if key not in ("currency", "models"):
            problems.append(
                Problem(file, key, f"unknown key{suggest(key, ('currency', 'models'))}")
            )
    currency = data.get("currency", "USD")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        problems.append(Problem(file, "currency", "must be a three-letter currency code"))
        currency = "USD"
    models = data.get("models", {})
    if not isinstance(models, dict):
        problems.append(Problem(file, "models", "must be a table of model tables"))
        return currency, {}
    prices: dict[str, Price] = {}
    for model, table in models.items():
        where = f'models."{model}"'
        if not (re.fullmatch(MODEL_ID, model) or re.fullmatch(APP_PROFILE_ARN, model)):
            problems.append(Problem(file, where, f"{model!r} is not a model id or profile ARN"))
        if not isinstance(table, dict):
            problems.append(Problem(file, where, "must be a table (input, output, ...)"))
            continue
        price = _price(table, f"{where}", file, problems)
        if price is not None:
            prices[model] = price
    return currency, prices


def _amount(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return False
    return Decimal(value).is_finite() and value >= 0


def _price(
    table: Mapping[str, Any], where: str, file: str, problems: list[Problem]
) -> Price | None:
    values: dict[str, Decimal] = {}
    ok = True
    for key, value in table.items():
        if key not in _FIELDS:
            problems.append(Problem(file, f"{where}.{key}", f"unknown key{suggest(key, _FIELDS)}"))
            ok = False
        elif not _amount(value):
            problems.append(
                Problem(file, f"{where}.{key}", "must be a number of USD, 0 or more (e.g. 3.00)")
            )
            ok = False
        else:
            values[key] = Decimal(value)
    for key in _REQUIRED:
        if key not in table:
            problems.append(Problem(file, f"{where}.{key}", "required"))
            ok = False
    return Price(**values) if ok else None
