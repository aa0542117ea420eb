"""Parsing model invocation log records: every documented shape, and precise refusals."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from policies.errors import InvalidRecord
from policies.invocation_log import InvocationRecord, parse_all, parse_record, split_records
from policies.prices import Tokens
from tests.unit.policies.invocation_records import AGENT_ARN, HAIKU_PROFILE, PROMPT, line, record

pytestmark = pytest.mark.unit


def test_a_converse_record_gives_who_when_which_model_and_the_tokens() -> None:
    assert parse_record(line()) == InvocationRecord(
        request_id="req-1",
        timestamp=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
        arn=AGENT_ARN,
        model_id=HAIKU_PROFILE,
        tokens=Tokens(input=1234, output=100),
        operation="Converse",
        region="us-east-1",
        account_id="123456789012",
    )


@pytest.mark.parametrize(
    "operation", ["InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"]
)
def test_every_operation_reads_the_same_way(operation: str) -> None:
    parsed = parse_record(line(operation=operation))
    assert parsed.operation == operation and parsed.tokens == Tokens(input=1234, output=100)


def test_cache_tokens_are_read() -> None:
    parsed = parse_record(line(cache_read=2048, cache_write=512))
    assert parsed.tokens == Tokens(input=1234, output=100, cache_read=2048, cache_write=512)


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-haiku-20240307-v1:0",
        HAIKU_PROFILE,
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + HAIKU_PROFILE,
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    ],
)
def test_model_ids_profile_ids_and_arns_are_kept_as_given(model: str) -> None:
    assert parse_record(line(model=model)).model_id == model


def test_an_error_record_without_output_counts_its_input_tokens() -> None:
    parsed = parse_record(line(tokens_out=None, errorCode="ThrottlingException", status=429))
    assert parsed.error_code == "ThrottlingException"
    assert parsed.tokens == Tokens(input=1234)


def test_an_error_record_without_any_counts_is_zero_tokens() -> None:
    body = record(tokens_in=None, tokens_out=None, errorCode="ValidationException")
    del body["input"]
    assert parse_record(json.dumps(body)).tokens == Tokens()


def test_unknown_fields_and_a_later_schema_version_are_read() -> None:
    parsed = parse_record(
        line(
            schemaVersion="2.3",
            inferenceRegion="us-west-2",
            somethingNew={"nested": [1, 2]},
            output={"outputTokenCount": 7, "newCounter": 3},
        )
    )
    assert parsed.inference_region == "us-west-2" and parsed.tokens.output == 7


def test_a_timestamp_with_an_offset_and_fractions_is_read_as_utc() -> None:
    parsed = parse_record(line(timestamp="2026-11-30T11:00:00.250+01:00"))
    assert parsed.timestamp == datetime(2026, 11, 30, 10, 0, 0, 250000, tzinfo=UTC)


def test_the_bodies_are_not_kept() -> None:
    parsed = parse_record(line())
    assert PROMPT not in repr(parsed)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"garbage", "not JSON: JSON is malformed: invalid character (byte 0)"),
        (
            json.dumps({k: v for k, v in record().items() if k != "requestId"}).encode(),
            "not a model invocation log record: Object missing required field `requestId`",
        ),
        (
            line(schemaType="SomethingElse"),
            "schemaType is 'SomethingElse', not 'ModelInvocationLog'",
        ),
        (
            line(tokens_in=-1),
            "not a model invocation log record: Expected `int` >= 0 - at `$.input.inputTokenCount`",
        ),
        (
            line(timestamp="2026-11-30T10:00:00"),
            "not a model invocation log record: Expected `datetime` with a timezone component"
            " - at `$.timestamp`",
        ),
        (
            line(identity={"name": "x"}),
            "not a model invocation log record: Object missing required field `arn`"
            " - at `$.identity`",
        ),
        (
            line(requestId=""),
            "not a model invocation log record: Expected `str` of length >= 1 - at `$.requestId`",
        ),
    ],
)
def test_what_is_not_a_record_is_refused_with_the_field_and_never_the_value(
    text: bytes, reason: str
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_record(text)
    assert caught.value.reason == reason
    assert PROMPT not in str(caught.value)


def test_json_lines_gzipped_and_pretty_printed_files_all_split_into_records() -> None:
    lines = [line(request_id=f"r{i}") for i in range(3)]
    jsonl = b"\n".join(lines) + b"\n\n"
    assert list(split_records(jsonl)) == lines
    pretty = b"\n".join(json.dumps(record(request_id=f"r{i}"), indent=2).encode() for i in range(3))
    assert [parse_record(r).request_id for r in split_records(pretty)] == ["r0", "r1", "r2"]
    parsed = list(parse_all([gzip.compress(jsonl), pretty]))
    assert [r.request_id for r in parsed if isinstance(r, InvocationRecord)] == [
        "r0",
        "r1",
        "r2",
        "r0",
        "r1",
        "r2",
    ]


def test_a_bad_line_is_reported_and_the_others_still_read() -> None:
    parsed = list(parse_all([line(request_id="a") + b"\n{oops}\n" + line(request_id="b")]))
    assert [type(p).__name__ for p in parsed] == [
        "InvocationRecord",
        "InvalidRecord",
        "InvocationRecord",
    ]
    broken = list(parse_all([b"\x1f\x8b not really gzip"]))
    assert len(broken) == 1 and isinstance(broken[0], InvalidRecord)
    assert broken[0].reason.startswith("a gzip file that does not decompress")
