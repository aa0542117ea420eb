"""What the smoke test prints and counts: checks, timed stages and the commands it runs."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


class SmokeFailed(RuntimeError):
    """A check did not hold, or the stack did not come up; the message says which."""


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion, output captured.

    Raises:
        SmokeFailed: it exited non-zero (with `check`) or ran past `timeout`, with its stderr.
    """
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SmokeFailed(f"`{shlex.join(argv)}` ran past {timeout:g} s") from exc
    if check and done.returncode != 0:
        raise SmokeFailed(
            f"`{shlex.join(argv)}` exited {done.returncode}:\n{tail(done.stderr or done.stdout)}"
        )
    return done


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(f"   | {line}" for line in text.rstrip().splitlines()[-lines:])


@dataclass
class Checks:
    """Counts checks; the first that fails ends the run (later steps build on earlier ones)."""

    passed: int = 0
    failed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)

    def ok(self, condition: bool, what: str, detail: str = "") -> None:
        """Raises: SmokeFailed when `condition` is false."""
        if not condition:
            self.failed += 1
            print(f"FAIL {what}" + (f"\n{detail}" if detail else ""), flush=True)
            raise SmokeFailed(what)
        self.passed += 1
        print(f"ok   {what}", flush=True)

    def equal(self, got: object, want: object, what: str) -> None:
        """Raises: SmokeFailed when got != want."""
        self.ok(got == want, what, f"   got  {got!r}\n   want {want!r}")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = time.monotonic() - start

    def note(self, key: str, value: str) -> None:
        self.facts[key] = value
        print(f"     {key}: {value}", flush=True)

    def summary(self) -> None:
        print("\n== summary", flush=True)
        for name, seconds in self.timings.items():
            print(f"     {name:<44} {seconds:7.1f} s")
        for key, value in self.facts.items():
            print(f"     {key}: {value}")
        sys.stdout.flush()
        # The closing line CI and people read: 'docker: N passed, N failed'.
        print(f"docker: {self.passed} passed, {self.failed} failed", flush=True)


def environ(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
