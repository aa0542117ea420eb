"""msgspec's validation messages as plain sentences that name the field.

msgspec words a failed check for programmers (``Expected `int` <= 604800``); people read
these at the HTTP edge (problem details) and in settings problems, so each known message
shape is reworded ("ttl_s must be at most 604800 seconds (7 days)"). A shape not known
here is kept as msgspec wrote it, after the field name, rather than lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import msgspec

_TYPES = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "null": "null",
    "array": "a list",
    "object": "an object",
    "bytes": "bytes",
    "datetime": "a date and time",
}
_GOT = {**_TYPES, "bool": "a boolean", "float": "a number with a fraction"}
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)

_COMPARISON = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}
_LENGTH_NOUN = {  # (one, many)
    "str": ("character", "characters"),
    "array": ("item", "items"),
    "object": ("entry", "entries"),
    "bytes": ("byte", "bytes"),
}
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")


def _wrong_type(match: re.Match[str], field: str) -> str:
    return f"must be {_kind(match['want'], _TYPES)}, not {_kind(match['got'], _GOT)}"


def _bound(match: re.Match[str], field: str) -> str:
    return f"must be {_COMPARISON[match['op']]} {_amount(match['limit'], field)}"


def _length(match: re.Match[str], field: str) -> str:
    n, kind, op = int(match["n"]), match["type"], match["op"]
    if op == ">=" and n == 1:
        return "must not be empty"
    noun = _LENGTH_NOUN[kind][0 if n == 1 else 1]
    if kind in {"array", "object"}:
        return f"must have {_COMPARISON[op]} {n} {noun}"
    return f"must be {_COMPARISON[op]} {n} {noun}" + (" long" if kind == "str" else "")


_WRONG_TYPE = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_UNSEEN = object()
_SHAPES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], str], str]], ...] = (
    (_WRONG_TYPE, _wrong_type),
    (re.compile(r"Expected `(?:int|float)` (?P<op><=|>=|<|>) (?P<limit>-?[\d.e+]+)"), _bound),
    (
        re.compile(
            r"Expected `(?P<type>str|array|object|bytes)` of length (?P<op><=|>=) (?P<n>\d+)"
        ),
        _length,
    ),
    (
        re.compile(r"Expected `(?:int|float)` that's a multiple of (?P<n>[\d.]+)"),
        lambda m, _: f"must be a multiple of {m['n']}",
    ),
    (
        re.compile(r"Expected `str` matching regex (?P<regex>.+)"),
        lambda m, _: f"must match the pattern {m['regex']}",
    ),
    (
        re.compile(r"Invalid enum value (?P<value>.+)"),
        lambda m, _: f"must be one of the allowed values, not {m['value']}",
    ),
    (re.compile(r"(?:Integer value|Number) out of range"), lambda m, _: "is out of range"),
)


class Complaint(NamedTuple):
    """What is wrong with one field: `subject` (the field, or the body) and what it must be."""

    subject: str
    predicate: str

    def __str__(self) -> str:
        return f"{self.subject} {self.predicate}"


def complaint(message: str, field: str, *, given: object = _UNSEEN) -> Complaint:
    """msgspec's `message` about `field` ("" for the whole document) in plain words; a
    value of the wrong type is shown as `given` when known, else by its type."""
    subject = field or "the request body"
    if match := _MISSING.fullmatch(message):
        return Complaint(_join(field, match["name"]), "is required")
    if match := _UNKNOWN.fullmatch(message):
        return Complaint(_join(field, match["name"]), "is not a known field")
    if given is not _UNSEEN and (match := _WRONG_TYPE.fullmatch(message)):
        return Complaint(subject, f"must be {_kind(match['want'], _TYPES)}, not {given!r}")
    return Complaint(subject, _predicate(message, field))


def error_complaint(
    exc: msgspec.ValidationError, field: str = "", *, given: object = _UNSEEN
) -> Complaint:
    """A `msgspec.ValidationError` from `convert` or `decode` about `field` (more of the
    field's name from the error's path); `given` is the value converted."""
    match = _AT.fullmatch(str(exc))
    if match is None:
        return complaint(str(exc), field, given=given)
    path = match["path"]
    inner = _join(field, path.lstrip(".")) if not path.startswith("[") else field + path
    return complaint(match["message"], inner, given=_UNSEEN if path else given)


def sentence(message: str, field: str) -> str:
    """`complaint` as one sentence: "ttl_s must be at most 604800 seconds (7 days)"."""
    return str(complaint(message, field))


def error_sentence(exc: msgspec.ValidationError) -> str:
    """`error_complaint` as one sentence."""
    return str(error_complaint(exc))


def _predicate(message: str, field: str) -> str:
    for shape, words in _SHAPES:
        if match := shape.fullmatch(message):
            return words(match, field)
    return f"is not valid: {message}"


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _kind(spelled: str, words: dict[str, str]) -> str:
    """`int | null` as "a whole number or null"."""
    names = [words.get(part.strip(), f"`{part.strip()}`") for part in spelled.split("|")]
    return " or ".join(names)


def _amount(limit: str, field: str) -> str:
    """`limit` with its unit, read from the field's suffix: 604800 seconds (7 days)."""
    value = float(limit)
    number = f"{value:g}" if value != int(value) or abs(value) >= 1e15 else str(int(value))
    name = re.sub(r"\[\d+\]$", "", field).rsplit(".", 1)[-1]
    if name.endswith("_ms"):
        return f"{number} milliseconds"
    if not name.endswith("_s"):
        return number
    if value == int(value) and value >= 60:
        return f"{number} seconds ({duration_words(int(value))})"
    return f"{number} second" if value == 1 else f"{number} seconds"


def duration_words(seconds: int) -> str:
    """7 days, 1 hour 30 minutes, 45 seconds: at most the two largest units."""
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}" + ("s" if count != 1 else ""))
    return " ".join(parts[:2]) or "0 seconds"
