"""Revocations are sent again until the broker confirms them, then the CLI says so or says
plainly that it failed.

A broker on replicated Redis confirms a revocation only once no failover can lose it;
during a failover it answers 503 `revocation-unconfirmed` (or `store-unavailable`) and the
revocation may or may not have been recorded. Revoking is idempotent, so the same request
goes again, after 1, 2, 4, 8 and 8 s (or the broker's Retry-After, up to 30 s): about 25 s,
longer than a Sentinel or Cluster failover. After the last attempt the error says that the
revocation may not be in force, and the command exits 4 (the documented code for "the
broker or its state store is unavailable").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from vouch_delegate._errors import BrokerUnavailable, NetworkError
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._text import printable

T = TypeVar("T")

WAITS_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 8.0)
"""Waits between attempts; one attempt more than waits."""
MAX_HINT_S = 30.0


def until_confirmed(ctx: Context, what: str, send: Callable[[], T]) -> T:
    """`send()` until it answers, retrying what may pass (503, no answer).

    Raises:
        BrokerUnavailable, NetworkError: still not confirmed after every attempt, with a
            detail that says the revocation may not be in force.
        VouchError: any other refusal, at once.
    """
    for attempt, pause in enumerate((*WAITS_S, None), start=1):
        try:
            return send()
        except (BrokerUnavailable, NetworkError) as exc:
            if pause is None:
                raise type(exc)(
                    f"{what} was NOT confirmed after {attempt} attempts: it may not be in"
                    f" force. Run the same command again. Last answer: {exc.detail}",
                    status=exc.status,
                    problem=exc.problem,
                ) from exc
            hint = getattr(exc, "retry_after", None)
            wait = max(pause, hint) if hint is not None and hint <= MAX_HINT_S else pause
            ctx.err.write(
                f"vouch: {what} not confirmed yet ({printable(exc.detail)});"
                f" trying again in {wait:g} s\n"
            )
            ctx.http.sleep(wait)
    raise AssertionError("unreachable")  # the last attempt returns or raises
