"""Faults the gate injects for reliability tests: throttling, server errors, slow answers."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tests.harness.sts_checks import StsError


@dataclass
class _Pending:
    throttle: int = 0
    fail: int = 0
    fail_status: int = 500
    delay: int = 0
    delay_s: float = 0.0


class Faults:
    """Counters of faults still to inject; thread-safe. `take()` is called once per call."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._lock = threading.Lock()
        self._pending = _Pending()
        self._released = threading.Event()
        self._released.set()

    def hold(self) -> None:
        """Every call from now on waits until `release()` (or the gate stops)."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def throttle_next(self, n: int) -> None:
        with self._lock:
            self._pending.throttle = n

    def fail_next(self, n: int, status: int) -> None:
        with self._lock:
            self._pending.fail, self._pending.fail_status = n, status

    def delay_next(self, n: int, seconds: float) -> None:
        with self._lock:
            self._pending.delay, self._pending.delay_s = n, seconds

    def reset(self) -> None:
        with self._lock:
            self._pending = _Pending()
        self._released.set()

    def take(self) -> StsError | None:
        """Wait out a pending delay, then the error to answer instead of the call, if any."""
        with self._lock:
            pending = self._pending
            delay_s = 0.0
            if pending.delay > 0:
                pending.delay -= 1
                delay_s = pending.delay_s
        if delay_s:
            self._stopping.wait(delay_s)  # stop() cuts the wait short
        while not self._released.wait(0.05) and not self._stopping.is_set():
            pass
        with self._lock:
            if pending.throttle > 0:
                pending.throttle -= 1
                return StsError("Throttling", "Rate exceeded")
            if pending.fail > 0:
                pending.fail -= 1
                return _server_error(pending.fail_status)
        return None


def _server_error(status: int) -> StsError:
    if status == 503:
        return StsError("ServiceUnavailable", "Service unavailable", 503, "Receiver")
    return StsError(
        "InternalFailure",
        "The request processing has failed because of an unknown error, exception or failure.",
        status,
        "Receiver",
    )
