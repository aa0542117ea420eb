"""Agent token -> short-lived AWS credentials, cached and refreshed ahead of expiry.

One exchange (POST /v1/credentials/aws) per refresh, never per use: callers share the
cached credentials, and at most one refresh is in flight. Two situations make the next
refresh wait instead of following `refresh_margin_s` literally: the broker handing back
credentials already inside the margin (it caches them too), and a transient failure
while the current credentials are still good. Either way the pause doubles, so a broker
is never polled in a loop. Permanent refusals (revoked, expired, denied) raise at once.

Credentials never outlive the agent token: their expiration is cut to the token's `exp`
(the broker's session policy ends them then anyway, even when STS's 900 s floor made them
last longer), nothing is refreshed before that end since nothing newer could outlast it,
and once it has passed the SDK raises TokenExpired without asking the broker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._client import BrokerClient
from ._errors import (
    BrokerUnavailable,
    ConfigError,
    NetworkError,
    RateLimited,
    TokenExpired,
    VouchError,
)
from ._messages import CredentialDocument, decode
from ._token import TokenSource, claims_of, resolve_server, token_source
from ._transport import Transport

log = logging.getLogger("vouch_delegate")

MIN_PAUSE_S = 1.0
MAX_PAUSE_S = 60.0
MIN_USABLE_S = 60.0  # below this, stale credentials are not worth serving through an outage
_TRANSIENT = (NetworkError, BrokerUnavailable, RateLimited)


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    """Temporary AWS credentials from one exchange."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    @classmethod
    def from_document(cls, doc: CredentialDocument) -> AwsCredentials:
        """The credentials in an exchange's answer (a time without zone is UTC)."""
        expiration = doc.expiration
        return cls(
            doc.access_key_id,
            doc.secret_access_key,
            doc.session_token,
            expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC),
        )

    @classmethod
    def from_process_document(cls, doc: Mapping[str, object]) -> AwsCredentials:
        """Raises: InvalidResponse when `doc` is not a credential_process document."""
        return cls.from_document(decode(doc, CredentialDocument, "the credential exchange"))

    def process_document(self) -> dict[str, str | int]:
        """The AWS `credential_process` JSON document (Version 1)."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": _iso(self.expiration),
        }

    def environment(self) -> dict[str, str]:
        """The AWS_* variables every AWS SDK reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_CREDENTIAL_EXPIRATION": _iso(self.expiration),
        }

    def __repr__(self) -> str:  # a secret must not reach a log through repr()
        return f"AwsCredentials({self.access_key_id[:4]}…, expires {_iso(self.expiration)})"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _token_end(token: str) -> float | None:
    """The token's `exp`, unverified; None when it has none we can read (the broker judges)."""
    try:
        exp = claims_of(token).get("exp")
    except ConfigError:
        return None
    return float(exp) if isinstance(exp, int) and not isinstance(exp, bool) else None


def pause_s(pauses: int) -> float:
    """The wait after `pauses` consecutive refreshes that brought nothing new: 1, 2, 4 ... 60."""
    return min(MIN_PAUSE_S * 2.0 ** min(pauses, 16), MAX_PAUSE_S)


def next_refresh_at(now: float, expires_at: float, margin_s: float, pauses: int) -> float:
    """When to exchange again: `margin_s` before expiry, or, if that moment has passed,
    after `pause_s(pauses)` (but before the credentials run out)."""
    planned = expires_at - margin_s
    if planned > now:
        return planned
    return now + min(pause_s(pauses), max(0.0, expires_at - now) / 2)


@dataclass(frozen=True)
class _Cached:
    credentials: AwsCredentials
    refresh_at: float
    pauses: int  # consecutive refreshes that brought nothing usable for long (0: on time)


class AgentCredentials:
    """AWS credentials for an agent token, exchanged with the broker and kept fresh.

    The server is `server`, else VOUCH_SERVER, else the token's `iss`; the token is `token`,
    else `token_file` (reread at each refresh), else VOUCH_AGENT_TOKEN or
    VOUCH_AGENT_TOKEN_FILE. `models` narrows the grant, `duration_s` asks for a lifetime
    (the broker clamps both). Thread-safe: at most one refresh runs at a time.

    Raises:
        ConfigError: no token or server, or an unsafe token file.
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        *,
        refresh_margin_s: float = 300,
        models: Sequence[str] | None = None,
        duration_s: int | None = None,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source: TokenSource = token_source(token, token_file, os.environ)
        self.server = resolve_server(server, self._source.read(), os.environ)
        self.refresh_margin_s = refresh_margin_s
        self.models = list(models) if models else None
        self.duration_s = duration_s
        self.transport = transport or Transport()
        self.clock = clock
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

    @property
    def claims(self) -> dict[str, Any]:
        """The agent token's claims (unverified): sub, dlg, models, exp, ..."""
        return claims_of(self._source.read())

    def get(self) -> AwsCredentials:
        """Current credentials, exchanging for new ones when they are due.

        Raises:
            TokenRevoked, TokenExpired, TokenInvalid, PolicyDenied, GrantInvalid, ...: the
                broker refused; NetworkError, BrokerUnavailable: it could not answer and
                no still-valid credentials were at hand; InvalidResponse: it answered
                something other than a credential document.
        """
        cached = self._cached
        if cached is not None and self.clock() < cached.refresh_at:
            return cached.credentials
        with self._lock:
            cached = self._cached  # another thread may have refreshed while we waited
            if cached is not None and self.clock() < cached.refresh_at:
                return cached.credentials
            return self._refresh_locked(cached)

    def refresh(self) -> AwsCredentials:
        """Exchange now, whatever the cache holds (same errors as `get`)."""
        with self._lock:
            return self._refresh_locked(None)

    def _refresh_locked(self, cached: _Cached | None) -> AwsCredentials:
        try:
            fresh, token_end = self._exchange()
        except _TRANSIENT as exc:
            if cached is None or not self._still_usable(cached.credentials):
                raise
            log.warning("vouch: refresh failed (%s); keeping current credentials", exc.detail)
            self._cached = _Cached(
                cached.credentials, self._retry_at(cached, exc), cached.pauses + 1
            )
            return cached.credentials
        self._remember(fresh, cached, token_end)
        return fresh

    def _retry_at(self, cached: _Cached, exc: VouchError) -> float:
        """After a pause, or the broker's Retry-After, but while the credentials still work."""
        hinted = getattr(exc, "retry_after", None) or 0.0
        wait = max(pause_s(cached.pauses), hinted)
        return min(self.clock() + wait, cached.credentials.expiration.timestamp() - MIN_USABLE_S)

    def _remember(
        self, fresh: AwsCredentials, previous: _Cached | None, token_end: float | None
    ) -> None:
        now = self.clock()
        expires_at = fresh.expiration.timestamp()
        prior = previous.pauses if previous is not None else 0
        if token_end is not None and expires_at >= token_end:
            # They end with the token: no exchange can bring anything lasting longer, so
            # none is made before the end (a token file is read again then).
            self._cached = _Cached(fresh, expires_at, 0)
            return
        late = expires_at - self.refresh_margin_s <= now
        refresh_at = next_refresh_at(now, expires_at, self.refresh_margin_s, prior)
        self._cached = _Cached(fresh, refresh_at, prior + 1 if late else 0)

    def _still_usable(self, credentials: AwsCredentials) -> bool:
        return credentials.expiration.timestamp() - self.clock() > MIN_USABLE_S

    def _exchange(self) -> tuple[AwsCredentials, float | None]:
        """Fresh credentials, cut to the token's end, and that end (None: the token has no
        integer `exp`, which the broker refuses anyway).

        Raises:
            TokenExpired: the token has expired (by this host's clock); nothing is sent.
        """
        token = self._source.read()
        token_end = _token_end(token)
        if token_end is not None and self.clock() >= token_end:
            raise TokenExpired(
                f"the agent token expired at {_iso(datetime.fromtimestamp(token_end, UTC))};"
                " its person can delegate again (vouch delegate)"
            )
        broker = BrokerClient(self.server, transport=self.transport)
        document = broker.exchange_aws(token, models=self.models, duration_s=self.duration_s)
        fresh = AwsCredentials.from_document(document)
        if token_end is not None and fresh.expiration.timestamp() > token_end:
            fresh = dataclasses.replace(fresh, expiration=datetime.fromtimestamp(token_end, tz=UTC))
        return fresh, token_end

    def botocore_metadata(self) -> dict[str, str]:
        """Current credentials in the shape botocore's RefreshableCredentials refreshes from."""
        creds = self.get()
        return {
            "access_key": creds.access_key_id,
            "secret_key": creds.secret_access_key,
            "token": creds.session_token,
            "expiry_time": _iso(creds.expiration),
        }

    def now(self) -> datetime:
        """The clock as an aware datetime (botocore's time_fetcher)."""
        return datetime.fromtimestamp(self.clock(), tz=UTC)
