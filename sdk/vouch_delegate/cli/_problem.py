"""The RFC 9457 problem document `vouch --json` prints on stdout when a command fails.

A script that asked for JSON gets JSON either way: the command's result, or this document
with the exit code in it. The one line for people still goes to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from vouch_delegate._errors import PROBLEM_PREFIX, VouchError

# Titles of the problems the CLI finds itself; the broker's problems carry their own.
_TITLES = {
    "config": "Bad arguments or configuration",
    "network": "Broker unreachable",
    "invalid-response": "Unexpected answer from the broker",
    "grant-mismatch": "Grant differs from the one asked for",
    "delegation-denied": "Request denied",
    "delegation-expired": "Request expired",
    "not-signed-in": "Not signed in",
    "no-key": "No usable security key",
    "wrong-pin": "Wrong PIN",
    "internal": "Internal error",
    "interrupted": "Interrupted",
}
_STANDARD = ("type", "title", "status", "detail")


def json_asked(argv: Sequence[str]) -> bool:
    """Whether --json is among vouch's own options (not after `--`, where exec's CMD starts)."""
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]
    return "--json" in words


def problem_document(error: VouchError, exit_code: int) -> dict[str, object]:
    """`type`, `title`, `status` (when the broker answered), `detail`, the broker's other
    members (`instance`, `retry_after`, `errors`, ...) and `exit_code`."""
    sent = error.problem
    slug = error.slug
    title = sent.get("title") if isinstance(sent.get("title"), str) else None
    document: dict[str, object] = {
        "type": PROBLEM_PREFIX + slug,
        "title": title or _TITLES.get(slug) or slug.replace("-", " ").capitalize(),
    }
    if error.status is not None:
        document["status"] = error.status
    document["detail"] = error.detail
    document.update((k, v) for k, v in sent.items() if k not in {*_STANDARD, "exit_code"})
    document["exit_code"] = exit_code
    return document


def write_problem(out: TextIO, error: VouchError, exit_code: int) -> None:
    out.write(json.dumps(problem_document(error, exit_code), indent=2) + "\n")
    out.flush()
