"""The audit trail: one capped Redis stream entry per security-relevant step.

Entries carry who, what and why, never a token, key or secret: `record` accepts only
plain fields and drops any whose name suggests a secret, as a last line of defence.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis

from broker.store import PREFIX, guard, text

STREAM = PREFIX + "audit"
_SECRET_WORDS = ("token", "secret", "password", "assertion", "signature", "code", "key_material")
log = logging.getLogger("vouch.audit")


def scrub(fields: dict[str, object]) -> dict[str, str]:
    """Fields as strings, without any whose name looks like it holds a secret."""
    clean: dict[str, str] = {}
    for name, value in fields.items():
        if value is None or any(word in name.lower() for word in _SECRET_WORDS):
            continue
        clean[name] = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return clean


class Audit:
    """Appends events to the capped `vouch:audit` stream and mirrors them to the log."""

    def __init__(self, redis: aioredis.Redis, *, max_len: int) -> None:
        self.redis = redis
        self.max_len = max_len

    async def record(self, event: str, **fields: object) -> None:
        entry = {"event": event, "ts": f"{time.time():.3f}", **scrub(fields)}
        log.info("audit %s", event, extra={"audit": entry})
        async with guard("writing the audit trail"):
            await self.redis.xadd(STREAM, entry, maxlen=self.max_len, approximate=True)  # type: ignore[arg-type]

    async def read(self, *, count: int = 100, before: str = "+") -> list[dict[str, str]]:
        """Newest first, at most `count` entries older than or equal to `before`."""
        async with guard("reading the audit trail"):
            rows: Any = await self.redis.xrevrange(STREAM, max=before, count=count)
        return [
            {"id": text(rid), **{text(k): text(v) for k, v in data.items()}} for rid, data in rows
        ]
