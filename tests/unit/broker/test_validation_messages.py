"""msgspec's validation messages reworded for people, with the field named."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import pytest

from broker.routes.admin import RevocationCreate
from broker.routes.delegations import DelegationBegin
from broker.validation_messages import duration_words, error_sentence, sentence

pytestmark = pytest.mark.unit


class Shapes(msgspec.Struct, forbid_unknown_fields=True):
    """One field per constraint msgspec words differently."""

    pattern: Annotated[str, msgspec.Meta(pattern="^[a-z]+$")] = "a"
    kind: Literal["x", "y"] = "x"
    step: Annotated[int, msgspec.Meta(multiple_of=5)] = 5
    share: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5
    table: Annotated[dict[str, int], msgspec.Meta(max_length=1)] = {}
    code: Annotated[str, msgspec.Meta(min_length=4)] = "abcd"
    one: Annotated[list[int], msgspec.Meta(max_length=1)] = []
    wait_ms: Annotated[int, msgspec.Meta(le=500)] = 0
    nested: DelegationBegin | None = None


def converted_error(struct: type[msgspec.Struct], value: dict[str, Any]) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(value, struct)
    return error_sentence(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"ttl_s": 30 * 86400}, "ttl_s must be at most 604800 seconds (7 days)"),
        ({"ttl_s": 59}, "ttl_s must be at least 60 seconds (1 minute)"),
        ({"max_sts_s": 86400}, "max_sts_s must be at most 43200 seconds (12 hours)"),
        ({"ttl_s": "2h"}, "ttl_s must be a whole number, not a string"),
        ({"ttl_s": 90.5}, "ttl_s must be a whole number, not a number with a fraction"),
        ({"ttl_s": True}, "ttl_s must be a whole number, not a boolean"),
        ({"rate": 0}, "rate must be at least 1"),
        ({"rate": "many"}, "rate must be a whole number or null, not a string"),
        ({"agent": ""}, "agent must not be empty"),
        ({"agent": "a" * 33}, "agent must be at most 32 characters long"),
        ({"models": ["m"] * 21}, "models must have at most 20 items"),
        ({"models": [""]}, "models[0] must not be empty"),
        ({"models": "m"}, "models must be a list, not a string"),
        ({"request_code": "ab"}, "request_code must be at least 4 characters long"),
        ({"bogus": 1}, "bogus is not a known field"),
    ],
)
def test_a_delegation_begin_body_is_refused_in_plain_words(
    value: dict[str, Any], expected: str
) -> None:
    assert converted_error(DelegationBegin, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"pattern": "A"}, "pattern must match the pattern '^[a-z]+$'"),
        ({"kind": "z"}, "kind must be one of the allowed values, not 'z'"),
        ({"step": 3}, "step must be a multiple of 5"),
        ({"share": 1.0}, "share must be less than 1"),
        ({"share": 0}, "share must be more than 0"),
        ({"table": {"a": 1, "b": 2}}, "table must have at most 1 entry"),
        ({"one": [1, 2]}, "one must have at most 1 item"),
        ({"code": "abc"}, "code must be at least 4 characters long"),
        ({"wait_ms": 501}, "wait_ms must be at most 500 milliseconds"),
        ({"nested": {"ttl_s": 1}}, "nested.ttl_s must be at least 60 seconds (1 minute)"),
        ({"nested": {"extra": 1}}, "nested.extra is not a known field"),
    ],
)
def test_every_constraint_shape_has_its_own_words(value: dict[str, Any], expected: str) -> None:
    assert converted_error(Shapes, value) == expected


def test_a_missing_field_a_fractional_bound_and_the_whole_body() -> None:
    assert converted_error(RevocationCreate, {"wait_s": 31}) == (
        "wait_s must be at most 30 seconds"
    )
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert([1], DelegationBegin)
    assert error_sentence(caught.value) == "the request body must be an object, not a list"

    class Needs(msgspec.Struct):
        email: str

    assert converted_error(Needs, {}) == "email is required"


def test_a_shape_not_known_keeps_msgspec_words_after_the_field() -> None:
    assert sentence("Invalid base64 encoded string", "blob") == (
        "blob is not valid: Invalid base64 encoded string"
    )


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(604800, "7 days"), (86400, "1 day"), (5400, "1 hour 30 minutes"), (61, "1 minute 1 second")],
)
def test_durations_in_words(seconds: int, words: str) -> None:
    assert duration_words(seconds) == words
