"""A bounded traffic generator: threads repeat HTTP calls until stopped, timing every answer.

Fault tests start it, inject a fault, and then judge each `Sample` by when it started and
ended relative to the fault (`time.monotonic()` on both sides). It always stops by itself:
after `max_seconds` or `max_requests`, whichever comes first, and it only talks to the URLs
it is given (loopback brokers).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

SECRET_MARKERS = ("SecretAccessKey", "SessionToken")


@dataclass(frozen=True)
class Call:
    """One request to repeat; `label` groups its samples (an agent, a route)."""

    label: str
    base_url: str
    method: str
    path: str
    token: str | None = None
    json: Any = None


@dataclass(frozen=True)
class Sample:
    """One answer (status 0: no answer at all, `slug` then names the transport error)."""

    label: str
    base_url: str
    started: float
    ended: float
    status: int
    slug: str
    secret: bool  # the body carried AWS credentials

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def within(self, start: float, end: float) -> bool:
        """Sent after `start` and answered before `end`: wholly inside the window."""
        return self.started >= start and self.ended <= end


class Traffic:
    """`threads` workers cycling through `calls`; use as a context manager."""

    def __init__(
        self,
        calls: Sequence[Call],
        *,
        threads: int = 4,
        max_seconds: float = 30.0,
        max_requests: int = 5000,
        timeout_s: float = 10.0,
    ) -> None:
        if not calls:
            raise ValueError("no calls to make")
        self.calls = list(calls)
        self.threads = threads
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.timeout_s = timeout_s
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._deadline = 0.0

    def __enter__(self) -> Traffic:
        self._deadline = time.monotonic() + self.max_seconds
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout_s + 5)

    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def wait_for(self, label: str, status: int, *, after: float, timeout: float = 10.0) -> Sample:
        """The first sample of `label` with `status` sent after `after` (waits for it).

        Raises:
            TimeoutError: none arrived within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                s
                for s in self.samples
                if s.label == label and s.status == status and s.started >= after
            ]
            if found:
                return min(found, key=lambda s: s.started)
            time.sleep(0.02)
        raise TimeoutError(f"no {status} for {label} sent after the mark within {timeout}s")

    def _run(self, index: int) -> None:
        order = self.calls[index % len(self.calls) :] + self.calls[: index % len(self.calls)]
        with httpx.Client(timeout=self.timeout_s) as client:
            for call in itertools.cycle(order):
                if self._stop.is_set() or time.monotonic() >= self._deadline:
                    return
                with self._lock:
                    if len(self._samples) >= self.max_requests:
                        return
                sample = self._send(client, call)
                with self._lock:
                    self._samples.append(sample)

    @staticmethod
    def _send(client: httpx.Client, call: Call) -> Sample:
        headers = {"Authorization": f"Bearer {call.token}"} if call.token else {}
        started = time.monotonic()
        try:
            answer = client.request(
                call.method, call.base_url + call.path, headers=headers, json=call.json
            )
        except httpx.HTTPError as exc:
            return Sample(
                call.label, call.base_url, started, time.monotonic(), 0, type(exc).__name__, False
            )
        ended = time.monotonic()
        body = answer.text
        slug = ""
        if answer.headers.get("content-type", "").startswith("application/problem+json"):
            slug = str(answer.json().get("type", "")).rsplit(":", 1)[-1]
        secret = any(marker in body for marker in SECRET_MARKERS)
        return Sample(call.label, call.base_url, started, ended, answer.status_code, slug, secret)


def tally(samples: Iterable[Sample]) -> dict[str, int]:
    """Counts by `status slug` ("503 store-unavailable", "200 "), for reports."""
    return dict(Counter(f"{s.status} {s.slug}".strip() for s in samples))
