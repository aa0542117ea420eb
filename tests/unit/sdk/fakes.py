"""Test doubles for the SDK's one seam, the transport, plus a clock the tests move."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from vouch_delegate import Transport

Answer = dict[str, Any] | Exception | Callable[[], dict[str, Any]]


class FakeTransport(Transport):
    """Answers requests from a script (dicts, exceptions or callables) and records them."""

    def __init__(self, *answers: Answer) -> None:
        super().__init__(sleep=lambda _: None)
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.requests.append({"method": method, "url": url, **kwargs})
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer() if callable(answer) else answer


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def document(expires_at: float, key: str = "ASIAEXAMPLE") -> dict[str, Any]:
    """A credential_process document as the broker answers it."""
    stamp = datetime.fromtimestamp(expires_at, tz=UTC).isoformat().replace("+00:00", "Z")
    return {
        "Version": 1,
        "AccessKeyId": key,
        "SecretAccessKey": "secret",
        "SessionToken": "session",
        "Expiration": stamp,
    }


def fake_jwt(claims: dict[str, Any]) -> str:
    """An unsigned token shaped like a JWS (the SDK never verifies; the broker does)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256', 'typ': 'vouch-agent+jwt'})}.{part(claims)}.c2ln"
