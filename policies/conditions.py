"""IAM Condition blocks: parsing and matching, following AWS's documented semantics.

- Every operator in a block, and every key under an operator, must match (AND); the
  values listed for one key are alternatives (OR).
- A key missing from the request: positive operators fail, negated ones (`...Not...`)
  match, `...IfExists` matches, `Null` tests exactly that; `ForAllValues:` matches
  an absent or empty set and `ForAnyValue:` does not.
- A list-valued request key needs `ForAnyValue:` or `ForAllValues:`; without one the
  evaluator refuses rather than guess.
Anything not understood (an unknown or unsupported operator, a policy variable, a value
of the wrong type) raises `EvaluationError`: a policy is never judged by a silent guess.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from policies.errors import EvaluationError

ContextValue = str | bool | int | float | datetime | Sequence[str]
"""A request context value: a scalar, or a list of strings for a multivalued key."""

_Compare = Callable[[Any, Any], bool]

_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_UNSUPPORTED = {"BinaryEquals", "IpAddress", "NotIpAddress"}


def glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM wildcard matching: `*` any run, `?` one character, every other character literal."""
    return _glob(pattern, ignore_case)


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def arn_like(value: str, pattern: str) -> bool:
    """ArnLike/ArnEquals: each of the six colon-separated components is matched on its own.

    That is AWS's rule for these condition operators; Resource elements differ
    (resources.py). A pattern that is not a whole ARN matches no ARN, except `*`.
    """
    if pattern == "*":
        return True
    parts, wanted = value.split(":", 5), pattern.split(":", 5)
    if len(wanted) == 6 and len(parts) == 6:
        return all(glob(w).fullmatch(p) is not None for p, w in zip(parts, wanted, strict=True))
    return len(wanted) != 6 and len(parts) != 6 and glob(pattern).fullmatch(value) is not None


def _date(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", value):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        return _date(datetime.fromisoformat(value))
    raise TypeError(value)


def _number(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(value) from None


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError(value)


def _string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(value)


# name -> (how to read a value, how a request value compares with a policy value)
_OPERATORS: dict[str, tuple[Callable[[object], Any], _Compare]] = {
    "StringEquals": (_string, operator.eq),
    "StringEqualsIgnoreCase": (_string, lambda v, p: v.casefold() == p.casefold()),
    "StringLike": (_string, lambda v, p: glob(p).fullmatch(v) is not None),
    "NumericEquals": (_number, operator.eq),
    "NumericLessThan": (_number, operator.lt),
    "NumericLessThanEquals": (_number, operator.le),
    "NumericGreaterThan": (_number, operator.gt),
    "NumericGreaterThanEquals": (_number, operator.ge),
    "DateEquals": (_date, operator.eq),
    "DateLessThan": (_date, operator.lt),
    "DateLessThanEquals": (_date, operator.le),
    "DateGreaterThan": (_date, operator.gt),
    "DateGreaterThanEquals": (_date, operator.ge),
    "Bool": (_boolean, operator.eq),
    "ArnEquals": (_string, arn_like),
    "ArnLike": (_string, arn_like),
    "Null": (_boolean, operator.eq),
}


@dataclass(frozen=True)
class Condition:
    """One key under one operator, parsed: e.g. `ForAnyValue:StringLikeIfExists`."""

    name: str
    key: str
    """Lower-cased: condition keys are case-insensitive."""
    values: tuple[Any, ...]
    base: str
    negated: bool
    qualifier: str
    """"", "ForAnyValue" or "ForAllValues"."""
    if_exists: bool

    def matches(self, context: Mapping[str, ContextValue]) -> bool:
        """Whether the request context (keys lower-cased) satisfies this condition."""
        raw = context.get(self.key)
        present = raw is not None and raw not in ([], ())
        if self.base == "Null":
            return any(value is not present for value in self.values)
        if not present:
            return (
                self.if_exists
                or self.qualifier == "ForAllValues"
                or (self.negated and not self.qualifier)
            )
        items = list(raw) if isinstance(raw, list | tuple) else [raw]
        if not self.qualifier and len(items) != 1:
            raise EvaluationError(
                f"{self.key} has {len(items)} values: use ForAnyValue: or ForAllValues:"
            )
        results = [self._one(item) for item in items]
        return all(results) if self.qualifier == "ForAllValues" else any(results)

    def _one(self, item: object) -> bool:
        read, compare = _OPERATORS[self.base]
        try:
            value = read(item)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"{self.key}: {item!r} is not usable with {self.name}") from exc
        hit = any(compare(value, p) for p in self.values)
        return hit is not self.negated


def parse_conditions(block: object, where: str) -> tuple[Condition, ...]:
    """Every (operator, key) pair of a Condition block.

    Raises:
        EvaluationError: unknown or unsupported operator, policy variable, bad value.
    """
    if not isinstance(block, dict):
        raise EvaluationError(f"{where}: Condition must be an object")
    out: list[Condition] = []
    for name, keys in block.items():
        if not isinstance(keys, dict) or not keys:
            raise EvaluationError(f"{where}.{name}: expected an object of condition keys")
        out.extend(_parse_one(name, key, values, f"{where}.{name}") for key, values in keys.items())
    return tuple(out)


def _split(name: str, where: str) -> tuple[str, str, bool]:
    qualifier, _, rest = name.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise EvaluationError(f"{where}: unknown set operator {qualifier!r}")
    if_exists = rest.endswith("IfExists") and rest != "IfExists"
    base = rest.removesuffix("IfExists") if if_exists else rest
    if base in _UNSUPPORTED:
        raise EvaluationError(f"{where}: operator {base} is not supported by this evaluator")
    if base not in _OPERATORS and base not in _NEGATED:
        raise EvaluationError(f"{where}: unknown condition operator {name!r}")
    if base == "Null" and (qualifier or if_exists):
        raise EvaluationError(f"{where}: Null takes neither IfExists nor a set operator")
    return qualifier, base, if_exists


def _parse_one(name: str, key: str, values: object, where: str) -> Condition:
    qualifier, base, if_exists = _split(name, where)
    negated = base in _NEGATED
    positive = _NEGATED.get(base, base)
    items = values if isinstance(values, list) else [values]
    if not items:
        raise EvaluationError(f"{where}.{key}: no values")
    read = _OPERATORS[positive][0]
    try:
        parsed = tuple(read(_no_variables(v, f"{where}.{key}")) for v in items)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"{where}.{key}: {values!r} is not a valid {base} value") from exc
    return Condition(name, key.lower(), parsed, positive, negated, qualifier, if_exists)


def _no_variables(value: object, where: str) -> object:
    if isinstance(value, str) and "${" in value:
        raise EvaluationError(f"{where}: policy variables ({value!r}) are not supported")
    return value
