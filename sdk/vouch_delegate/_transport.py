"""All HTTP the SDK and CLI do: one urllib3 pool, JSON in and out, problems as typed errors.

Retries cover only requests that are safe to repeat (GET, and the exchange, which is
idempotent) and only failures that may pass: no answer at all, or a 503. A Retry-After
longer than the caller is willing to wait is not slept through; the error is raised.

Proxies come from the environment as users expect (HTTPS_PROXY or HTTP_PROXY by the
broker's scheme, lowercase names first, NO_PROXY honoured); https goes through them in a
CONNECT tunnel, so TLS is still verified end to end. A broker on localhost, 127.0.0.1 or
[::1] is never proxied unless a proxy is passed explicitly.
"""

from __future__ import annotations

import ipaddress
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit
from urllib.request import getproxies_environment

import urllib3
from urllib3.exceptions import LocationParseError
from urllib3.util import make_headers, parse_url

from ._errors import (
    BrokerUnavailable,
    ConfigError,
    InvalidResponse,
    NetworkError,
    VouchError,
    from_problem,
)
from ._version import __version__

USER_AGENT = f"vouch-delegate/{__version__}"
# Plain http is allowed to these hosts only, spelled exactly so: other spellings of loopback
# (127.1, localhost., [::ffff:127.0.0.1]) are refused rather than reasoned about.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_MAX_BODY = 1 << 20  # broker answers are small; refuse to buffer anything absurd
_URL_FORM = "http(s)://HOST[:PORT][/PATH]"


def normalize_server(url: str) -> str:
    """The broker base URL, rebuilt from what urllib3 (the HTTP client) reads in it.

    The check and the connection must agree on the host: a URL that two parsers could read
    differently (userinfo, a backslash, a percent-encoded host, a query or fragment,
    whitespace or non-ASCII inside) is refused rather than interpreted.

    Raises:
        ConfigError: not such a URL, or plain http to a host other than localhost,
            127.0.0.1 or [::1] (bearer tokens must not cross a network in clear text).
    """
    text = url.strip()
    if not text.isascii() or not text.isprintable() or any(c in text for c in " \\@?#"):
        raise ConfigError(
            f"broker URL must be {_URL_FORM}, without userinfo, backslashes, spaces, "
            f"a query or a fragment: {url!r}"
        )
    try:
        parts = parse_url(text)
    except LocationParseError:
        raise ConfigError(f"broker URL must be {_URL_FORM}, not {url!r}") from None
    scheme, host, port = (parts.scheme or "").lower(), (parts.host or "").lower(), parts.port
    authority = text.partition("://")[2].partition("/")[0]
    if scheme not in {"http", "https"} or not host or "%" in authority:
        raise ConfigError(f"broker URL must be {_URL_FORM}, not {url!r}")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"broker URL has no usable port: {url!r}")
    if scheme == "http" and host not in _LOCAL_HOSTS:
        raise ConfigError(
            f"broker URL must use https (plain http only for localhost, 127.0.0.1 or [::1]): "
            f"{url!r}"
        )
    netloc = f"{host}:{port}" if port is not None else host
    rebuilt = f"{scheme}://{netloc}{(parts.path or '').rstrip('/')}"
    # The standard library's reading (used for the WebAuthn origin) must name the same host.
    if urlsplit(rebuilt).hostname != host.strip("[]"):
        raise ConfigError(f"broker URL is ambiguous: {url!r}")
    return rebuilt


def origin_of(server: str) -> str:
    """The WebAuthn origin of a broker URL (scheme://host[:port])."""
    parts = urlsplit(server)
    return f"{parts.scheme}://{parts.netloc}"


class Transport:
    """Sends JSON requests to a broker; swap or wrap it to observe or fake the network.

    `attempts` bounds tries of retryable requests; waits grow from `backoff_s` with jitter,
    or follow the broker's Retry-After when it is at most `max_wait_s`. `proxy` sends
    every request through that proxy, a loopback broker's too; without it the environment's
    proxy settings apply (see the module docstring). A `pool` passed in is used as it is.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        max_wait_s: float = 30.0,
        pool: urllib3.PoolManager | None = None,
        sleep: Callable[[float], None] = time.sleep,
        proxy: str | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s),
            "retries": False,  # this class decides what is safe to repeat
            "headers": {"User-Agent": USER_AGENT},
        }
        self._own_pool = pool is None  # a pool passed in is used for everything, as it is
        self.pool = pool or urllib3.PoolManager(**self._options)
        self.proxy = proxy
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        self._proxies_lock = threading.Lock()
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self._answered = threading.local()  # the Date of each thread's last answer

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to `url` goes through, or None for a direct connection.

        `proxy` when one was passed (for every host); else the environment's proxy for
        the URL's scheme unless NO_PROXY names the host; never one for a loopback broker.
        """
        if not self._own_pool:
            return None
        if self.proxy:
            return self.proxy
        parts = parse_url(url)
        host = (parts.host or "").lower()
        if host in _LOCAL_HOSTS:
            return None
        proxies = getproxies_environment()
        chosen = proxies.get(parts.scheme or "")
        if not chosen or _no_proxy(host.strip("[]"), parts.port, proxies.get("no", "")):
            return None
        return chosen

    def _pool_for(self, url: str) -> tuple[urllib3.PoolManager, str | None]:
        """The pool that sends to `url`, and the proxy it goes through (credentials cut)."""
        proxy = self.proxy_for(url)
        if proxy is None:
            return self.pool, None
        with self._proxies_lock:
            manager = self._proxies.get(proxy)
            if manager is None:
                manager = self._proxies[proxy] = self._proxy_manager(proxy)
        return manager, _without_credentials(proxy)

    def _proxy_manager(self, proxy: str) -> urllib3.ProxyManager:
        """Raises: ConfigError when `proxy` is not an http(s) URL."""
        try:
            parts = parse_url(proxy)
        except LocationParseError:
            parts = None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.host:
            raise ConfigError(
                f"proxy {_without_credentials(proxy)} (from the environment or proxy=) must "
                "be an http:// or https:// URL"
            )
        # urllib3 ignores credentials in a proxy URL; they go in Proxy-Authorization.
        headers = make_headers(proxy_basic_auth=unquote(parts.auth)) if parts.auth else None
        return urllib3.ProxyManager(
            _without_credentials(proxy), proxy_headers=headers, **self._options
        )

    def broker_date(self) -> float | None:
        """The broker's clock (its `Date` header, epoch seconds, whole seconds) in the last
        answer this thread received, or None when it sent none or nothing was received."""
        answered = getattr(self, "_answered", None)  # a subclass may skip __init__
        date: float | None = getattr(answered, "date", None)
        return date

    def answer_header(self, name: str) -> str | None:
        """The header `name` of the last answer this thread received (None: absent)."""
        headers = getattr(getattr(self, "_answered", None), "headers", None)
        value = headers.get(name) if headers is not None else None
        return value if isinstance(value, str) else None

    def request(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int] | None = None,
        retry: bool | None = None,
        proof: Callable[[str, str], str] | None = None,
    ) -> dict[str, Any]:
        """The JSON object the broker answered.

        `retry` defaults to True for GET only; pass True for other idempotent requests.
        `proof(method, url)` makes a DPoP proof for each attempt (a retry sends a new one):
        the token then goes as `Authorization: DPoP`, the proof in the `DPoP` header.

        Raises:
            NetworkError: no answer after the allowed attempts.
            InvalidResponse: a success answer that is not a JSON object.
            VouchError: the broker's problem as its typed subclass (see the error tree).
        """
        retryable = method == "GET" if retry is None else retry
        target = f"{url}?{urlencode(query)}" if query else url
        self._answered.date = None
        self._answered.headers = None
        attempt = 1
        while True:
            try:
                return self._send(method, target, token, body, proof)
            except (NetworkError, BrokerUnavailable) as exc:
                wait = self._wait_before_retry(exc, attempt)
                if not retryable or wait is None:
                    raise
                self.sleep(wait)
            attempt += 1

    def _wait_before_retry(self, exc: VouchError, attempt: int) -> float | None:
        """Seconds to wait before another attempt, or None when there is none to make."""
        if attempt >= self.attempts:
            return None
        backoff = self.backoff_s * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.0)  # noqa: S311
        hinted: float | None = getattr(exc, "retry_after", None)
        if hinted is None:
            return backoff
        return None if hinted > self.max_wait_s else max(hinted, backoff)

    def _send(
        self,
        method: str,
        url: str,
        token: str | None,
        body: Mapping[str, Any] | None,
        proof: Callable[[str, str], str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json, application/problem+json"}
        if token and proof is not None:
            headers["Authorization"] = f"DPoP {token}"
            headers["DPoP"] = proof(method, url)
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        pool, proxy = self._pool_for(url)
        try:
            response = pool.request(
                method, url, body=payload, headers=headers, preload_content=False
            )
            data = response.read(_MAX_BODY + 1, decode_content=True)
            response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            via = f" through the proxy {proxy}" if proxy else ""
            raise NetworkError(
                f"cannot reach the broker at {_where(url)}{via}: {_reason(exc)}"
            ) from exc
        self._answered.date = _http_date(response.headers.get("Date"))
        self._answered.headers = response.headers
        return _answer(response.status, response.headers, data)


def _answer(status: int, headers: Mapping[str, str], data: bytes) -> dict[str, Any]:
    """A success body as a dict, or the typed error an error body stands for."""
    parsed = _json_object(data) if len(data) <= _MAX_BODY else None
    if 200 <= status < 300:
        if parsed is None:
            raise InvalidResponse(f"the broker answered HTTP {status} without a JSON object")
        return parsed
    problem = parsed if parsed is not None else {}
    raise from_problem(status, problem, retry_after=_retry_after(headers.get("Retry-After")))


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data) if data else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _retry_after(value: str | None) -> float | None:
    # Only delta-seconds: the broker never sends HTTP dates, and a proxy's date would
    # need a trustworthy clock to interpret.
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):  # malformed: no clock to compare with
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _no_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether NO_PROXY names `host`, as curl reads it: `*`, a name and its subdomains
    (a leading dot or `*.` optional), an IP address or network, each optionally `:PORT`."""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        name, _, only_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if only_port and port is not None and only_port != str(port):
            continue
        name = name.strip("[]").removeprefix("*.").lstrip(".")
        if entry == "*" or (name and (host == name or host.endswith("." + name))):
            return True
        if name and _in_network(host, name):
            return True
    return False


def _has_port(entry: str) -> bool:
    head, colon, tail = entry.rpartition(":")
    return bool(colon) and tail.isdigit() and (head.endswith("]") or ":" not in head)


def _in_network(host: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:  # not addresses: compared as names above
        return False


def _without_credentials(proxy: str) -> str:
    """A proxy URL fit to show: scheme, host and port."""
    try:
        parts = parse_url(proxy)
    except LocationParseError:
        return "(unreadable proxy URL)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.host}{port}" if parts.host else "(proxy URL without a host)"


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    # urllib3 prefixes the cause with a repr of the connection ("HTTPConnection(host=...): ").
    return text.split("): ", 1)[-1] if text.startswith("HTTP") and "): " in text else text
