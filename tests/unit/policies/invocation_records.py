"""Model invocation log records in the shapes Bedrock writes, for tests."""

from __future__ import annotations

import json
from typing import Any

AGENT_ARN = (
    "arn:aws:sts::123456789012:assumed-role/vouch-agents/"
    "dlg_3kq0b4Y2m9T1xVwA.researcher.alice@example.com"
)
PERSON_ARN = "arn:aws:sts::123456789012:assumed-role/vouch-people/user.alice@example.com"
HAIKU_PROFILE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
PROMPT = "SECRET-PROMPT-TEXT"


def record(
    request_id: str = "req-1",
    *,
    arn: str = AGENT_ARN,
    model: str = HAIKU_PROFILE,
    operation: str = "Converse",
    timestamp: str = "2026-11-30T10:00:00Z",
    tokens_in: int | None = 1234,
    tokens_out: int | None = 100,
    cache_read: int | None = None,
    cache_write: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A record as Bedrock writes it, bodies included (they hold the prompt)."""
    given_in: dict[str, Any] = {
        "inputContentType": "application/json",
        "inputBodyJson": {"messages": [{"role": "user", "content": [{"text": PROMPT}]}]},
    }
    if tokens_in is not None:
        given_in["inputTokenCount"] = tokens_in
    if cache_read is not None:
        given_in["cacheReadInputTokenCount"] = cache_read
    if cache_write is not None:
        given_in["cacheWriteInputTokenCount"] = cache_write
    body: dict[str, Any] = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": timestamp,
        "accountId": "123456789012",
        "identity": {"arn": arn},
        "region": "us-east-1",
        "requestId": request_id,
        "operation": operation,
        "modelId": model,
        "input": given_in,
    }
    if tokens_out is not None:
        body["output"] = {
            "outputContentType": "application/json",
            "outputBodyJson": {"output": {"message": {"content": [{"text": PROMPT}]}}},
            "outputTokenCount": tokens_out,
        }
    body.update(extra)
    return body


def line(**kwargs: Any) -> bytes:
    return json.dumps(record(**kwargs)).encode()
