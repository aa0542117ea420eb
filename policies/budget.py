"""A delegation's budget: an exact decimal amount in the price table's currency.

Written as people write money ("5", "5.00", "0.25"): digits, at most six decimals, never an
exponent or a binary float. The grant carries the text as given (the tap signs those
bytes); spend is kept in whole `UNITS_PER_CURRENCY` units (10^-12 of the currency), which
holds any token cost exactly for prices with at most six decimals per million tokens.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Final

from policies.errors import InvalidGrant

MAX_BUDGET: Final = Decimal(1_000_000)
"""No single delegation's budget is larger (a typo of a few zeros is refused)."""
UNITS_PER_CURRENCY: Final = 10**12
"""Spend is counted in these integer units (pico-dollars for USD): exact, and Redis'
INCRBY holds up to 9.2 million of the currency in them."""
_TEXT: Final = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,6})?")


def parse_budget(text: str) -> Decimal:
    """The amount in "5", "5.00" or "0.25": positive, at most six decimals, at most 1,000,000.

    Raises:
        InvalidGrant: anything else (field "budget").
    """
    if not isinstance(text, str) or _TEXT.fullmatch(text.strip()) is None:
        raise InvalidGrant(
            "budget", f"{text!r} is not an amount like 5 or 5.00 (at most six decimals)"
        )
    amount = Decimal(text.strip())
    if amount <= 0 or amount > MAX_BUDGET:
        raise InvalidGrant("budget", f"{text!r} must be more than 0 and at most {MAX_BUDGET}")
    return amount


def to_units(amount: Decimal) -> int:
    """`amount` in whole units, rounded up: a cap never counts less than was spent."""
    return int((amount * UNITS_PER_CURRENCY).to_integral_value(rounding=ROUND_CEILING))


def from_units(units: int) -> Decimal:
    """The exact amount of `units`."""
    return Decimal(units).scaleb(-12)


def plain(amount: Decimal) -> str:
    """An exact amount in fixed-point notation, without trailing zeros ("0.003702")."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
