"""Agent token -> short-lived AWS credentials, cached and refreshed ahead of expiry.

One exchange (POST /v1/credentials/aws) per refresh, never per use: callers share the
cached credentials, and at most one refresh is in flight; while it runs, other callers
get the current credentials if they are still good instead of waiting on the network.
Two situations make the next refresh wait instead of following `refresh_margin_s`
literally: the broker handing back credentials already inside the margin, or the very
credentials held (it caches them too), and a transient failure while the current
credentials are still good. Either way the pause doubles, so a broker is never polled in
a loop. Permanent refusals (revoked, expired, denied) raise at once.

Refreshes are planned on the credentials' lifetime as the broker's clock counts it (their
Expiration less the broker's Date), from the moment this process asked, so a local clock
that runs ahead or behind does not make every lookup an exchange, nor a refresh late.

Credentials never outlive the agent token: their expiration is cut to the token's `exp`
(the broker's session policy ends them then anyway, even when STS's 900 s floor made them
last longer), nothing is refreshed before that end since nothing newer could outlast it,
and once it has passed the SDK raises TokenExpired without asking the broker.

`PersonCredentials` does the same for the signed-in person's own use: the token is their
saved `vouch login` session (read again at each refresh, so a new login takes effect), the
exchange is `POST /v1/credentials/aws/self`, and the session's end is the token's end; a
missing or ended session raises NotSignedIn ("run `vouch login`") without asking the broker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._agent_key import AgentKey, bound_thumbprint, key_for
from ._client import BrokerClient
from ._errors import (
    BrokerUnavailable,
    ConfigError,
    NetworkError,
    NotSignedIn,
    RateLimited,
    TokenExpired,
    VouchError,
)
from ._messages import CredentialDocument, decode
from ._token import SERVER_ENV, TokenSource, claims_of, resolve_server, token_source
from ._transport import Transport, normalize_server

log = logging.getLogger("vouch_delegate")

MIN_PAUSE_S = 1.0
MAX_PAUSE_S = 60.0
MIN_USABLE_S = 60.0  # below this, stale credentials are not worth serving through an outage
MAX_LIFETIME_S = 43_200.0  # STS's longest; a broker Date that implies more is not believed
DATE_RESOLUTION_S = 1.0  # an HTTP Date is in whole seconds, rounded down
_TRANSIENT = (NetworkError, BrokerUnavailable, RateLimited)
REGION_HEADER = "Vouch-Region"  # the broker's home region, beside the credentials
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


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


def pause_s(pauses: int) -> float:
    """The wait after `pauses` consecutive refreshes that brought nothing new: 1, 2, 4 ... 60."""
    return min(MIN_PAUSE_S * 2.0 ** min(pauses, 16), MAX_PAUSE_S)


def next_refresh_at(
    now: float, expires_at: float, margin_s: float, pauses: int, *, renewed: bool = True
) -> float:
    """When to exchange again: `margin_s` before expiry, or, if that moment has passed or
    the last exchange brought nothing `renewed`, after `pause_s(pauses)` (but before the
    credentials run out)."""
    planned = expires_at - margin_s
    if renewed and planned > now:
        return planned
    return now + min(pause_s(pauses), max(0.0, expires_at - now) / 2)


def _token_end(token: str) -> float | None:
    """The token's `exp`, unverified; None when it has none we can read (the broker judges)."""
    try:
        exp = claims_of(token).get("exp")
    except ConfigError:
        return None
    return float(exp) if isinstance(exp, int) and not isinstance(exp, bool) else None


def _readable_claims(token: str) -> dict[str, Any]:
    """The token's claims, unverified; none when it is not a JWT (the broker judges it)."""
    try:
        return claims_of(token)
    except ConfigError:
        return {}


def _local_expiry(fresh: AwsCredentials, asked: float, broker_date: float | None) -> float:
    """When `fresh` runs out by the clock that read `asked` (just before the exchange).

    Their lifetime is Expiration minus the broker's Date, both by the broker's clock;
    counted from `asked` (no later than the broker's answer) and less the Date's rounding,
    it ends no later than the real expiry. Without a Date, the Expiration is all there is.
    """
    expiration = fresh.expiration.timestamp()
    if broker_date is None:
        return expiration
    lifetime = min(expiration - broker_date, MAX_LIFETIME_S)
    return asked + lifetime - DATE_RESOLUTION_S


@dataclass(frozen=True)
class _Cached:
    credentials: AwsCredentials
    expires_at: float  # by this process's clock (see `_local_expiry`)
    refresh_at: float
    pauses: int  # consecutive refreshes that brought nothing usable for long (0: on time)


class AgentCredentials:
    """AWS credentials for an agent token, exchanged with the broker and kept fresh.

    The server is `server`, else VOUCH_SERVER, else the token's `iss`; the token is `token`,
    else `token_file` (reread at each refresh), else VOUCH_AGENT_TOKEN or
    VOUCH_AGENT_TOKEN_FILE. `models` narrows the grant, `duration_s` asks for a lifetime
    (the broker clamps both). A token bound to the agent's key (`cnf.jkt`) is exchanged with
    a DPoP proof signed by `key`, else the key in `key_file` or VOUCH_AGENT_KEY_FILE, else
    the key this process made for it (`request_delegation`). Thread-safe: at most one
    refresh runs at a time.

    Raises:
        ConfigError: no token or server, an unsafe token or key file, or a bound token
            without its key.
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
        key: AgentKey | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> None:
        source = token_source(token, token_file, os.environ)
        self._key_choice = (key, key_file)
        self.key = key_for(
            _readable_claims(source.read()), key=key, key_file=key_file, env=os.environ
        )
        self._start(
            source,
            resolve_server(server, source.read(), os.environ),
            refresh_margin_s=refresh_margin_s,
            models=models,
            duration_s=duration_s,
            transport=transport,
            clock=clock,
        )

    def _start(
        self,
        source: TokenSource | SavedSessionSource,
        server: str,
        *,
        refresh_margin_s: float,
        models: Sequence[str] | None,
        duration_s: int | None,
        transport: Transport | None,
        clock: Callable[[], float],
    ) -> None:
        self._source: TokenSource | SavedSessionSource = source
        self.server = server
        self.refresh_margin_s = refresh_margin_s
        self.models = list(models) if models else None
        self.duration_s = duration_s
        self.transport = transport or Transport()
        self.clock = clock
        self._cached: _Cached | None = None
        self._region: str | None = None
        self._lock = threading.Lock()

    def _ask(self, broker: BrokerClient, token: str) -> CredentialDocument:
        """One exchange of `token` at the broker (with a proof of its key when bound)."""
        key, claims = self.key, _readable_claims(token)
        if bound_thumbprint(claims) != (key.thumbprint if key else None):
            # A token file may be replaced by a token bound to another key, or to none.
            chosen, key_file = self._key_choice
            key = self.key = key_for(claims, key=chosen, key_file=key_file, env=os.environ)
        return broker.exchange_aws(token, models=self.models, duration_s=self.duration_s, key=key)

    def _ended(self, end: float) -> VouchError:
        """The error once the token has expired (by this host's clock)."""
        return TokenExpired(
            f"the agent token expired at {_iso(datetime.fromtimestamp(end, UTC))};"
            " its person can delegate again (vouch delegate)"
        )

    @property
    def claims(self) -> dict[str, Any]:
        """The agent token's claims (unverified): sub, dlg, models, exp, ..."""
        return claims_of(self._source.read())

    @property
    def region(self) -> str | None:
        """The broker's home region for these credentials (where the grant's models are
        called), learned with the first exchange (made now if none was); None if the broker
        did not say.

        Raises: as `get`, when an exchange is needed and fails.
        """
        if self._region is None and self._cached is None:
            self.get()
        return self._region

    def get(self) -> AwsCredentials:
        """Current credentials, exchanging for new ones when they are due.

        While another thread refreshes, still-valid credentials are returned at once.

        Raises:
            TokenRevoked, TokenExpired, TokenInvalid, PolicyDenied, GrantInvalid, ...: the
                broker refused; NetworkError, BrokerUnavailable: it could not answer and
                no still-valid credentials were at hand; InvalidResponse: it answered
                something other than a credential document.
        """
        return self._current().credentials

    def refresh(self) -> AwsCredentials:
        """Exchange now, whatever the cache holds (same errors as `get`)."""
        with self._lock:
            return self._refresh_locked(None).credentials

    def _current(self) -> _Cached:
        cached = self._cached
        if cached is not None and self.clock() < cached.refresh_at:
            return cached
        if not self._lock.acquire(blocking=False):
            # A refresh is in flight (maybe against a hung broker): what is still good is
            # served rather than waited for; only callers with nothing usable queue up.
            if cached is not None and self._still_usable(cached):
                return cached
            self._lock.acquire()
        try:
            cached = self._cached  # another thread may have refreshed meanwhile
            if cached is not None and self.clock() < cached.refresh_at:
                return cached
            return self._refresh_locked(cached)
        finally:
            self._lock.release()

    def _refresh_locked(self, cached: _Cached | None) -> _Cached:
        try:
            fresh, expires_at, ends_with_token = self._exchange()
        except _TRANSIENT as exc:
            if cached is None or not self._still_usable(cached):
                raise
            log.warning("vouch: refresh failed (%s); keeping current credentials", exc.detail)
            kept = _Cached(
                cached.credentials,
                cached.expires_at,
                self._retry_at(cached, exc),
                cached.pauses + 1,
            )
            self._cached = kept
            return kept
        if ends_with_token:
            # They end with the token: no exchange can bring anything lasting longer, so
            # none is made before the end (a token file is read again then).
            self._cached = _Cached(fresh, expires_at, expires_at, 0)
            return self._cached
        return self._remember(fresh, expires_at, cached)

    def _retry_at(self, cached: _Cached, exc: VouchError) -> float:
        """After a pause, or the broker's Retry-After, but while the credentials still work."""
        hinted = getattr(exc, "retry_after", None) or 0.0
        wait = max(pause_s(cached.pauses), hinted)
        return min(self.clock() + wait, cached.expires_at - MIN_USABLE_S)

    def _remember(
        self, fresh: AwsCredentials, expires_at: float, previous: _Cached | None
    ) -> _Cached:
        now = self.clock()
        prior = previous.pauses if previous is not None else 0
        # The broker's cache may hand back the credentials held: nothing new, however long
        # the whole-second Date makes their lifetime look, so the next refresh pauses too.
        renewed = previous is None or fresh.expiration > previous.credentials.expiration
        late = not renewed or expires_at - self.refresh_margin_s <= now
        refresh_at = next_refresh_at(now, expires_at, self.refresh_margin_s, prior, renewed=renewed)
        cached = _Cached(fresh, expires_at, refresh_at, prior + 1 if late else 0)
        self._cached = cached
        return cached

    def _still_usable(self, cached: _Cached) -> bool:
        return cached.expires_at - self.clock() > MIN_USABLE_S

    def _exchange(self) -> tuple[AwsCredentials, float, bool]:
        """Fresh credentials cut to the token's end, when they run out by this process's
        clock, and whether that end is the token's.

        Raises:
            TokenExpired: the token has expired (by this host's clock); nothing is sent.
        """
        token = self._source.read()
        token_end = _token_end(token)
        asked = self.clock()
        if token_end is not None and asked >= token_end:
            raise self._ended(token_end)
        document = self._ask(BrokerClient(self.server, transport=self.transport), token)
        fresh = AwsCredentials.from_document(document)
        region = self.transport.answer_header(REGION_HEADER)
        if region is not None and _REGION.fullmatch(region):
            self._region = region
        cut = token_end is not None and fresh.expiration.timestamp() >= token_end
        if token_end is not None and fresh.expiration.timestamp() > token_end:
            fresh = dataclasses.replace(fresh, expiration=datetime.fromtimestamp(token_end, tz=UTC))
        return fresh, _local_expiry(fresh, asked, self.transport.broker_date()), cut

    def botocore_metadata(self) -> dict[str, str]:
        """Current credentials in the shape botocore's RefreshableCredentials refreshes from.

        The expiry is by this process's clock (`now`, botocore's time_fetcher), so botocore
        judges them on their lifetime too, whatever the local clock's error.
        """
        current = self._current()
        creds = current.credentials
        return {
            "access_key": creds.access_key_id,
            "secret_key": creds.secret_access_key,
            "token": creds.session_token,
            "expiry_time": _iso(datetime.fromtimestamp(current.expires_at, tz=UTC)),
        }

    def now(self) -> datetime:
        """The clock as an aware datetime (botocore's time_fetcher)."""
        return datetime.fromtimestamp(self.clock(), tz=UTC)


class SavedSessionSource:
    """The signed-in person's session token, as `vouch login` saved it, read at each use.

    Raises (`read`): NotSignedIn when there is no session for this broker (or its keyring
    cannot be read here); ConfigError when the saved file is unsafe or unreadable.
    """

    def __init__(self, server: str | None, env: Mapping[str, str]) -> None:
        # The saved session belongs to the CLI; imported here, not at the top, because the
        # CLI's package imports this module.
        from .cli._store import SessionStore  # noqa: PLC0415

        self._store = SessionStore.from_env(env)
        chosen = server or env.get(SERVER_ENV, "").strip()
        saved = self._store.load()
        if chosen:
            self.server = normalize_server(chosen)
        elif saved is not None:
            self.server = saved.server
        else:
            raise NotSignedIn(
                f"not signed in (no saved session): run `vouch login`, or set {SERVER_ENV}"
            )

    def __repr__(self) -> str:
        return f"SavedSessionSource(server={self.server!r})"

    def read(self) -> str:
        saved = self._store.load()
        if saved is None or saved.server != self.server or not saved.token:
            raise NotSignedIn(f"not signed in to {self.server}: run `vouch login`")
        return saved.token


class PersonCredentials(AgentCredentials):
    """The signed-in person's own AWS credentials, exchanged with the broker and kept fresh.

    The session is the one `vouch login` saved for `server` (else VOUCH_SERVER, else the
    saved session's broker); it is read again at every refresh. The credentials allow the
    models the org policy lets this person use themselves (`models` narrows them) and end
    with the session. Thread-safe, refreshed as `AgentCredentials` are.

    Raises:
        NotSignedIn: no saved session (also from `get` once it has ended: `vouch login`).
        ConfigError: the saved session file is unsafe or unreadable.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        refresh_margin_s: float = 300,
        models: Sequence[str] | None = None,
        duration_s: int | None = None,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        source = SavedSessionSource(server, os.environ)
        self._start(
            source,
            source.server,
            refresh_margin_s=refresh_margin_s,
            models=models,
            duration_s=duration_s,
            transport=transport,
            clock=clock,
        )

    @property
    def claims(self) -> dict[str, Any]:
        """The session's claims (unverified): sub (the email), exp, ..."""
        return claims_of(self._source.read())

    def _ask(self, broker: BrokerClient, token: str) -> CredentialDocument:
        return broker.with_session(token).own_credentials_aws(
            models=self.models, duration_s=self.duration_s
        )

    def _ended(self, end: float) -> VouchError:
        return NotSignedIn(
            f"your session for {self.server} ended at"
            f" {_iso(datetime.fromtimestamp(end, UTC))}: run `vouch login`"
        )
