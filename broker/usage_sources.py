"""Where Bedrock's model invocation log records are read from, as raw file contents.

A source is named by one string (`vouch-broker usage --from`, the `usage_source` setting):

- a local file (JSON lines, gzipped or not) or a directory tree of them, as S3 delivers;
- `s3://BUCKET/PREFIX`: every object under the prefix (paginated), skipping those last
  written before the range starts (a record is written after its call);
- `cloudwatch` or `cloudwatch:GROUP`: the events of the stream `aws/bedrock/modelinvocations`
  in the group (`aws.invocation_log_group` by default) within the range (paginated).

Each reader yields the bytes of one file, object or event; `policies.invocation_log` parses
them. Reading is blocking (boto3): callers in the event loop run it in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from broker.settings import AwsSettings
from policies.invocation_log import PERMISSION_CHECK, STREAM

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client

CLOUDWATCH: Final = "cloudwatch"
_SUFFIXES: Final = (".json", ".jsonl", ".gz", ".log")
_CONFIG: Final = Config(
    retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=20
)


class SourceError(Exception):
    """A source that cannot be read; `unavailable` when AWS could not be reached (retry),
    else it is misnamed or refused (fix the name or the permissions)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def describe(spec: str) -> str:
    """Why `spec` names no source, or "" when it does (checked before reading)."""
    if spec.startswith("s3://"):
        bucket = spec[5:].split("/", 1)[0]
        return "" if bucket else f"{spec}: s3://BUCKET/PREFIX names no bucket"
    if spec == CLOUDWATCH or spec.startswith(f"{CLOUDWATCH}:"):
        return "" if spec != f"{CLOUDWATCH}:" else f"{spec}: cloudwatch:GROUP names no group"
    if not spec:
        return "an empty source: give a file, a directory, s3://BUCKET/PREFIX or cloudwatch"
    return "" if Path(spec).exists() else f"no such file or directory: {spec}"


def read(spec: str, *, start: datetime, end: datetime, aws: AwsSettings) -> Iterator[bytes]:
    """The contents of every file, object or event of the source that may hold records
    timestamped in [start, end).

    Raises:
        SourceError: no such file, bucket or log group, no credentials, AWS refused or
            could not be reached.
    """
    problem = describe(spec)
    if problem:
        raise SourceError(problem)
    try:
        if spec.startswith("s3://"):
            bucket, _, prefix = spec[5:].partition("/")
            yield from _s3(_s3_client(aws), bucket, prefix, start)
        elif spec.startswith(CLOUDWATCH):
            group = spec.partition(":")[2] or aws.invocation_log_group
            yield from _cloudwatch(logs_client(aws), group, start, end)
        else:
            yield from _local(Path(spec))
    except NoCredentialsError:
        raise SourceError(
            f"{spec}: no AWS credentials found (the standard boto3 chain: AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID, an instance role)"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        raise SourceError(f"{spec}: AWS refused: {code}: {message}") from None
    except BotoCoreError as exc:
        raise SourceError(f"{spec}: {exc}", unavailable=True) from None
    except OSError as exc:
        raise SourceError(f"{spec}: {exc.strerror or exc}: {exc.filename or spec}") from None


def _s3_client(aws: AwsSettings) -> S3Client:
    # A session of its own: boto3's default one keeps whatever credentials it found first.
    config = _CONFIG.merge(Config(s3={"addressing_style": "path"}))
    return boto3.session.Session().client(
        "s3", region_name=aws.region, endpoint_url=aws.endpoint_url, config=config
    )


def logs_client(aws: AwsSettings) -> CloudWatchLogsClient:
    return boto3.session.Session().client(
        "logs", region_name=aws.region, endpoint_url=aws.endpoint_url, config=_CONFIG
    )


def _local(path: Path) -> Iterator[bytes]:
    if path.is_file():
        yield path.read_bytes()
        return
    for item in sorted(path.rglob("*")):
        if item.is_file() and item.name != PERMISSION_CHECK and item.name.endswith(_SUFFIXES):
            yield item.read_bytes()


def _s3(s3: S3Client, bucket: str, prefix: str, start: datetime) -> Iterator[bytes]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.rsplit("/", 1)[-1] == PERMISSION_CHECK or item["LastModified"] < start:
                continue
            yield s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _cloudwatch(
    logs: CloudWatchLogsClient, group: str, start: datetime, end: datetime
) -> Iterator[bytes]:
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=group,
        logStreamNames=[STREAM],
        startTime=int(start.timestamp() * 1000),
        endTime=int(end.timestamp() * 1000),
    )
    for page in pages:
        for event in page.get("events", []):
            yield event.get("message", "").encode()
