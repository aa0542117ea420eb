"""Resource and NotResource patterns: which request resources a statement's ARN pattern covers.

IAM User Guide, "Using wildcards in resource ARNs": `*` (any run of characters) and `?` (any
one character) work inside a colon-separated segment, and a `*` that is the last character of
a segment can also match across the colons after it. So `arn:aws:bedrock:us-east-1:*` covers
every us-east-1 Bedrock ARN, while the `*` of `us-*-1` and every `?` stay inside their segment.
The ArnLike/ArnEquals condition operators are different: they compare the six ARN components
one by one (`conditions.arn_like`).
"""

from __future__ import annotations

import functools
import re


def resource_matches(resource: str, pattern: str) -> bool:
    """Whether a Resource or NotResource pattern covers this resource ARN (case-sensitive)."""
    return _regex(pattern).fullmatch(resource) is not None


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(":".join(map(_segment, pattern.split(":"))), re.DOTALL)


def _segment(segment: str) -> str:
    last = len(segment) - 1
    return "".join(
        (".*" if i == last else "[^:]*") if c == "*" else "[^:]" if c == "?" else re.escape(c)
        for i, c in enumerate(segment)
    )
