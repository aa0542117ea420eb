"""Bedrock model invocation log records: one JSON record -> an `InvocationRecord`, or why not.

Bedrock writes one record per call (CloudWatch Logs: one event each on the stream
`aws/bedrock/modelinvocations`; S3: gzipped files of records under
`<prefix>/AWSLogs/<account>/BedrockModelInvocationLogs/<region>/<yyyy>/<mm>/<dd>/<hh>/`).
Only what attribution and prices need is read: who (`identity.arn`), when, which model,
the token counts. The bodies (`input.inputBodyJson`, `output.outputBodyJson`, ...) hold the
prompts and answers: they are skipped by the decoder, never kept, and no error message
quotes a record. Unknown fields are ignored and optional ones may be missing, so a later
`schemaVersion` still reads; an error record (`errorCode`, no `output`) counts its tokens
as the record gives them (usually input only).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from policies.errors import InvalidRecord
from policies.prices import Tokens

SCHEMA_TYPE: Final = "ModelInvocationLog"
STREAM: Final = "aws/bedrock/modelinvocations"
"""The CloudWatch Logs stream Bedrock writes to, in the configured log group."""
PERMISSION_CHECK: Final = "amazon-bedrock-logs-permission-check"
"""The object Bedrock writes at the S3 prefix when logging is configured (not records)."""

_Count = Annotated[int, Meta(ge=0)]


class _Identity(msgspec.Struct, frozen=True):
    arn: str


class _Input(msgspec.Struct, frozen=True, rename="camel"):
    input_token_count: _Count | None = None
    cache_read_input_token_count: _Count | None = None
    cache_write_input_token_count: _Count | None = None


class _Output(msgspec.Struct, frozen=True, rename="camel"):
    output_token_count: _Count | None = None


class _Wire(msgspec.Struct, frozen=True, rename="camel"):
    """A record as Bedrock writes it, reduced to the fields read (the rest is skipped)."""

    schema_type: str
    timestamp: Annotated[datetime, Meta(tz=True)]
    identity: _Identity
    request_id: Annotated[str, Meta(min_length=1)]
    model_id: Annotated[str, Meta(min_length=1)]
    schema_version: str = ""
    account_id: str = ""
    region: str = ""
    operation: str = ""
    input: _Input | None = None
    output: _Output | None = None
    inference_region: str | None = None
    error_code: str | None = None


class InvocationRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One Bedrock call as usage needs it."""

    request_id: str
    timestamp: datetime
    arn: str
    """`identity.arn`: who called (`policies.attribution.attribute`)."""
    model_id: str
    """As the record names it: a model id, a profile id or ARN, an application profile ARN."""
    tokens: Tokens
    operation: str = ""
    region: str = ""
    account_id: str = ""
    inference_region: str | None = None
    error_code: str | None = None


_DECODER: Final = msgspec.json.Decoder(_Wire)


def parse_record(line: bytes | str) -> InvocationRecord:
    """The record in one JSON text.

    Raises:
        InvalidRecord: not JSON, not a model invocation log record, or a field of the wrong
            type (the reason names the field, never its value).
    """
    try:
        wire = _DECODER.decode(line)
    except msgspec.ValidationError as exc:
        raise InvalidRecord(f"not a model invocation log record: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRecord(f"not JSON: {exc}") from None
    if wire.schema_type != SCHEMA_TYPE:
        raise InvalidRecord(f"schemaType is {wire.schema_type[:40]!r}, not {SCHEMA_TYPE!r}")
    given_in, given_out = wire.input or _Input(), wire.output or _Output()
    return InvocationRecord(
        request_id=wire.request_id,
        timestamp=wire.timestamp,
        arn=wire.identity.arn,
        model_id=wire.model_id,
        tokens=Tokens(
            input=given_in.input_token_count or 0,
            output=given_out.output_token_count or 0,
            cache_read=given_in.cache_read_input_token_count or 0,
            cache_write=given_in.cache_write_input_token_count or 0,
        ),
        operation=wire.operation,
        region=wire.region,
        account_id=wire.account_id,
        inference_region=wire.inference_region,
        error_code=wire.error_code,
    )


def unpack(blob: bytes) -> bytes:
    """A file's content, gunzipped when it is gzip (as S3 delivers it).

    Raises:
        InvalidRecord: gzip that does not decompress.
    """
    if blob[:2] != b"\x1f\x8b":
        return blob
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError) as exc:
        raise InvalidRecord(f"a gzip file that does not decompress: {exc}") from None


def split_records(text: bytes) -> Iterator[bytes]:
    """The JSON records in a file: one per line (JSON lines), or objects one after another,
    each over several lines (pretty-printed)."""
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), b"")
    if len(first) > 1 and first.startswith(b"{") and first.endswith(b"}"):
        # JSON lines (what Bedrock writes): a line that is no record is reported on its own.
        yield from (line for line in lines if line.strip())
        return
    decoded = text.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    at, end = 0, len(decoded)
    while at < end:
        while at < end and decoded[at].isspace():
            at += 1
        if at >= end:
            return
        try:
            _, stop = decoder.raw_decode(decoded, at)
        except json.JSONDecodeError:
            # Not JSON from here on: hand the rest to the parser, which says why.
            yield decoded[at:].encode()
            return
        yield decoded[at:stop].encode()
        at = stop


def parse_all(blobs: Iterable[bytes]) -> Iterator[InvocationRecord | InvalidRecord]:
    """Every record in these files' contents (gzipped or not), or the error of each one that
    is not a record, in order."""
    for blob in blobs:
        try:
            text = unpack(blob)
        except InvalidRecord as exc:
            yield exc
            continue
        for line in split_records(text):
            try:
                yield parse_record(line)
            except InvalidRecord as exc:
                yield exc
