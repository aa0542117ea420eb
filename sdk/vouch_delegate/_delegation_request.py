"""The agent's side of an approval: ask a person for a delegation, wait for their tap.

POST /v1/delegation-requests returns a user code for the person (`vouch delegate approve
CODE`) and a poll secret for the agent; GET /v1/delegation-requests/{id} with that secret
answers pending | approved (with the token, exactly once) | denied | expired.

The request carries the agent's public key, so the token comes back bound to it (DPoP): a
copy of the token alone exchanges for nothing. The key is made in memory for this process
unless `key` or `key_file` (kept across restarts, 0600) names one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from ._agent_key import AgentKey, remember
from ._client import BrokerClient
from ._errors import (
    BrokerUnavailable,
    Conflict,
    DelegationDenied,
    DelegationExpired,
    NetworkError,
    NotFound,
    VouchError,
)
from ._grant import parse_duration
from ._messages import RequestCreated
from ._transport import Transport

log = logging.getLogger("vouch_delegate")

BACKOFF = 1.2  # gentle: approvals take a human a minute, not an hour
MAX_INTERVAL_S = 10.0


def _announce(created: RequestCreated) -> None:
    # Through logging rather than print: a library does not own stderr, but an unconfigured
    # logger still shows warnings there, so the code is not lost when on_code is omitted.
    left = max(0, int(created.expires_at - time.time()))
    if created.verification_uri_complete:
        log.warning(
            "vouch: ask your human to open %s (or run `vouch delegate approve %s`) (%ss)",
            created.verification_uri_complete,
            created.user_code,
            left,
        )
        return
    log.warning(
        "vouch: ask your human to run `vouch delegate approve %s` (%ss)", created.user_code, left
    )


def request_delegation(
    server: str,
    *,
    email: str,
    agent: str,
    models: Sequence[str],
    ttl: str | int = "2h",
    message: str = "",
    on_code: Callable[[str, int], None] | None = None,
    timeout_s: float = 300,
    transport: Transport | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    key: AgentKey | None = None,
    key_file: str | os.PathLike[str] | None = None,
    bind: bool = True,
    budget: str | None = None,
) -> str:
    """Ask `email` to delegate `models` to `agent` for `ttl`; the agent token once approved.

    `on_code(user_code, expires_at)` is called once with the code to relay to the person;
    without it the approval link (the broker's `/approve/CODE` page) and the code are logged.
    The token is bound to `key`, else the key in `key_file` (made there if missing), else a
    new in-memory key; `AgentCredentials` and `boto3_session` in this process find it by
    itself. `bind=False` asks for a bearer token (where the org policy allows one).
    `budget` ("5.00", the broker's price table currency) asks for a cap on what the
    delegation may spend: once spent, the broker revokes it (`BudgetExceeded`).

    Raises:
        DelegationDenied: the person refused. DelegationExpired: the request expired or
        `timeout_s` passed. GrantInvalid, ConfigError, NetworkError, ...: as named.
    """
    if bind and key is None:
        key = AgentKey.load_or_create(key_file) if key_file else AgentKey.generate()
    broker = BrokerClient(server, transport=transport)
    created = broker.create_request(
        email=email,
        agent=agent,
        models=models,
        ttl_s=parse_duration(ttl),
        message=message,
        jwk=key.public_jwk if bind and key is not None else None,
        budget=budget,
    )
    if on_code is None:
        _announce(created)
    else:
        on_code(created.user_code, created.expires_at)
    poll = _Poll(broker, created)
    token = poll.until_answered(clock() + timeout_s, clock, sleep)
    if token is None:
        raise DelegationExpired(f"no answer from {email} within {timeout_s:g} s")
    if bind and key is not None:
        remember(key)  # a key passed in is found by its token's thumbprint too
    return token


class _Poll:
    """One request's status, read with its poll secret."""

    def __init__(self, broker: BrokerClient, created: RequestCreated) -> None:
        self.broker = broker
        self.request_id = created.request_id
        self.secret = created.poll_secret
        self.server_interval = created.interval or 2.0

    def until_answered(
        self, deadline: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> str | None:
        """The token once approved, or None at `deadline` (raises on a final refusal)."""
        interval = self.server_interval
        while (remaining := deadline - clock()) > 0:
            sleep(min(interval, remaining))
            try:
                token = self.once()
            except (NetworkError, BrokerUnavailable) as exc:
                # The person may be tapping right now: an outage only delays the answer.
                log.warning("vouch: polling the delegation request failed: %s", exc.detail)
                token = None
            if token is not None:
                return token
            interval = max(self.server_interval, min(interval * BACKOFF, MAX_INTERVAL_S))
        return None

    def once(self) -> str | None:
        """The token once approved; None while pending.

        Raises: DelegationDenied, DelegationExpired, Conflict (token already delivered).
        """
        try:
            answer = self.broker.poll_request(self.request_id, self.secret)
        except NotFound:
            raise DelegationExpired("the delegation request expired") from None
        status = answer.status
        self.server_interval = answer.interval or self.server_interval
        if status == "pending":
            return None
        if status == "approved" and answer.token is not None:
            return answer.token
        if status == "denied":
            raise DelegationDenied("the person denied the delegation request")
        if status == "expired":
            raise DelegationExpired("the delegation request expired before anyone approved it")
        if status == "delivered":
            raise Conflict("the token for this request was already delivered to an earlier poll")
        raise VouchError(f"unexpected delegation request status {status!r}")
