"""The transport: JSON, problems as typed errors, and retries only where they are safe."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
from typing import Any

import pytest
import urllib3
from vouch_delegate import BrokerUnavailable, ConfigError, NetworkError, TokenRevoked, Transport
from vouch_delegate._transport import _no_proxy, normalize_server, origin_of

from tests.unit.sdk.fakes import FakeBroker, RecordingProxy

pytestmark = pytest.mark.unit

URL = "https://vouch.example.com/v1/x"
Reply = tuple[int, dict[str, str], bytes] | Exception


class FakePool:
    """Stands in for urllib3's PoolManager: scripted replies, recorded requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> urllib3.HTTPResponse:
        self.sent.append({"method": method, "url": url, **kwargs})
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, headers, body = reply
        return urllib3.HTTPResponse(
            body=io.BytesIO(body), status=status, headers=headers, preload_content=False
        )


def problem(slug: str, status: int, **extra: Any) -> tuple[int, dict[str, str], bytes]:
    body = {"type": f"urn:vouch:problem:{slug}", "status": status, "detail": slug, **extra}
    return status, {"Content-Type": "application/problem+json"}, json.dumps(body).encode()


def ok(data: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()


def transport(pool: FakePool, sleeps: list[float], **options: Any) -> Transport:
    return Transport(pool=pool, sleep=sleeps.append, **options)  # type: ignore[arg-type]


def test_json_in_and_out_with_bearer_token() -> None:
    pool = FakePool(ok({"fine": True}))
    answer = transport(pool, []).request("POST", URL, token="t0k", body={"a": 1})
    assert answer == {"fine": True}
    sent = pool.sent[0]
    assert sent["headers"]["Authorization"] == "Bearer t0k"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert json.loads(sent["body"]) == {"a": 1}


def test_problem_becomes_typed_error_and_is_not_retried() -> None:
    pool = FakePool(problem("token-revoked", 401))
    with pytest.raises(TokenRevoked, match="token-revoked"):
        transport(pool, []).request("GET", URL)
    assert len(pool.sent) == 1


def test_get_retries_503_honouring_retry_after() -> None:
    sleeps: list[float] = []
    pool = FakePool(problem("store-unavailable", 503), ok({"n": 1}))
    pool.replies[0] = (503, {"Retry-After": "2"}, pool.replies[0][2])  # type: ignore[index]
    assert transport(pool, sleeps).request("GET", URL) == {"n": 1}
    assert sleeps == [2.0]


def test_post_is_not_retried_unless_the_caller_says_it_is_idempotent() -> None:
    down = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    with pytest.raises(NetworkError, match="Connection refused"):
        transport(FakePool(down), []).request("POST", URL)
    sleeps: list[float] = []
    pool = FakePool(down, ok({"n": 2}))
    assert transport(pool, sleeps).request("POST", URL, retry=True) == {"n": 2}
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.5


def test_gives_up_after_the_attempts_and_on_a_long_retry_after() -> None:
    sleeps: list[float] = []
    timeouts = [urllib3.exceptions.ReadTimeoutError(None, URL, "timed out")] * 3  # type: ignore[arg-type]
    with pytest.raises(NetworkError):
        transport(FakePool(*timeouts), sleeps, attempts=3).request("GET", URL)
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] / 2
    long_wait = problem("unavailable", 503, retry_after=120)
    with pytest.raises(BrokerUnavailable) as caught:
        transport(FakePool(long_wait), [], max_wait_s=30).request("GET", URL)
    assert caught.value.retry_after == 120


def test_non_json_error_from_a_proxy_falls_back_by_status() -> None:
    pool = FakePool((502, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"))
    with pytest.raises(BrokerUnavailable, match="HTTP 502"):
        transport(pool, [], attempts=1).request("GET", URL)


def test_query_parameters_are_encoded() -> None:
    pool = FakePool(ok({}))
    transport(pool, []).request("GET", URL, query={"limit": 5, "all": "true"})
    assert pool.sent[0]["url"] == URL + "?limit=5&all=true"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://vouch.example.com/", "https://vouch.example.com"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:9/base/", "http://127.0.0.1:9/base"),
    ],
)
def test_server_urls_are_normalised(given: str, expected: str) -> None:
    assert normalize_server(given) == expected


@pytest.mark.parametrize(
    "bad", ["vouch.example.com", "http://vouch.example.com", "ftp://x", "https://x/?a=1"]
)
def test_unsafe_or_malformed_server_urls_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_server(bad)


def test_webauthn_origin_is_scheme_host_and_port() -> None:
    assert origin_of("https://vouch.example.com:8443/api") == "https://vouch.example.com:8443"


# Broker URLs are read with urllib3's parser, the one that picks the host it connects to, so
# what the "https unless localhost" rule checks is where the token goes.
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("HTTP://LOCALHOST:8080/", "http://localhost:8080"),
        ("http://localhost", "http://localhost"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("  https://vouch.example.com/api/ \n", "https://vouch.example.com/api"),
        ("https://Vouch.Example.COM:8443", "https://vouch.example.com:8443"),
        ("https://10.0.0.5:8443", "https://10.0.0.5:8443"),
    ],
)
def test_server_urls_are_normalised_as_the_http_client_reads_them(
    given: str, expected: str
) -> None:
    assert normalize_server(given) == expected


TRICKY_URLS = {
    # userinfo, and a backslash that one parser reads as a path and another as userinfo
    "backslash before @": "http://127.0.0.2:18599\\@localhost",
    "backslash to a remote host": "http://evil.example.com\\@localhost",
    "backslash in an https path": "https://vouch.example.com/a\\b",
    "userinfo": "http://user@localhost:8080",
    "userinfo with password": "https://user:pw@vouch.example.com",
    "empty userinfo": "http://@localhost",
    # what follows the host must not hide a second host
    "fragment hiding a host": "http://evil.example.com#@localhost",
    "fragment": "http://localhost:8080/#x",
    "query hiding a host": "http://evil.example.com?@localhost",
    "empty query": "http://localhost?",
    # percent-encoded hosts: urllib3 decodes them, so a check on the raw text is fooled
    "percent-encoded localhost": "http://%6cocalhost:8080",
    "percent-encoded dot": "https://vouch%2eexample.com",
    "IPv6 zone id": "http://[::1%25lo]:8080",
    # other spellings of loopback: refused for http, so only the three plain ones pass
    "trailing dot": "http://localhost.:8080",
    "short IPv4": "http://127.1:8080",
    "hex IPv4": "http://0x7f.0.0.1:8080",
    "integer IPv4": "http://2130706433:8080",
    "another loopback address": "http://127.0.0.2:8080",
    "IPv4-mapped IPv6": "http://[::ffff:127.0.0.1]:8080",
    "long IPv6 loopback": "http://[0:0:0:0:0:0:0:1]:8080",
    "fullwidth localhost": "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:8080",
    "localhost as a subdomain": "http://localhost.evil.example.com",
    # ports
    "port out of range": "http://localhost:99999",
    "port zero": "http://localhost:0",
    "port not a number": "http://localhost:80a",
    "negative port": "http://localhost:-1",
    # whitespace and control characters inside (urlsplit drops tabs and newlines silently)
    "tab in host": "http://local\thost:8080",
    "newline in host": "http://local\nhost:8080",
    "space before port": "http://localhost :8080",
    "space in path": "https://vouch.example.com/a b",
    "carriage return in path": "https://vouch.example.com/a\rb",
    # not an absolute http(s) URL
    "no scheme": "localhost:8080",
    "scheme-relative": "//localhost:8080",
    "one slash": "http:/localhost:8080",
    "no host": "http://",
    "other scheme": "ftp://localhost",
    "non-ASCII host": "https://v\u043eouch.example.com",
}


@pytest.mark.parametrize("url", TRICKY_URLS.values(), ids=TRICKY_URLS.keys())
def test_tricky_broker_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="broker URL"):
        normalize_server(url)


@pytest.mark.parametrize(
    ("date", "seen"),
    [("Tue, 15 Nov 1994 08:12:31 GMT", 784887151.0), ("yesterday", None), (None, None)],
)
def test_the_brokers_date_is_kept_for_the_thread_that_received_it(
    date: str | None, seen: float | None
) -> None:
    headers = {"Content-Type": "application/json", **({"Date": date} if date else {})}
    http = transport(FakePool((200, headers, b"{}")), [])
    http.request("GET", URL)
    assert http.broker_date() == seen
    other: list[float | None] = []
    thread = threading.Thread(target=lambda: other.append(http.broker_date()))
    thread.start()
    thread.join()
    assert other == [None]


# Proxies from the environment, as users expect them: HTTPS_PROXY / HTTP_PROXY by the
# broker's scheme, NO_PROXY honoured, loopback never proxied unless a proxy is passed.
PROXY_VARIABLES = ("https_proxy", "http_proxy", "no_proxy", "all_proxy", "REQUEST_METHOD")


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names the client tried to resolve itself. Only loopback names are really resolved:
    a direct connection to a remote broker fails here (gaierror) without leaving the host."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    tried: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in {"127.0.0.1", "localhost", "::1"}:
            return real(host, *args, **kwargs)
        tried.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "not resolved in tests")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return tried


def test_https_proxy_from_the_environment_tunnels_to_the_broker(
    monkeypatch: pytest.MonkeyPatch, lookups: list[str]
) -> None:
    with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://us%40er:p%3Aw@{proxy.address}")
        with pytest.raises(NetworkError, match=f"through the proxy http://{proxy.address}"):
            Transport(attempts=1).request("POST", URL, token="agent.jwt.secret", body={})
    assert len(proxy.seen) == 1
    request_line, *headers = proxy.seen[0].split("\r\n")
    assert request_line.startswith("CONNECT vouch.example.com:443 HTTP/1.")
    credentials = base64.b64encode(b"us@er:p:w").decode()
    named = dict(h.split(": ", 1) for h in headers if ": " in h)
    assert {k.lower(): v for k, v in named.items()}["proxy-authorization"] == f"Basic {credentials}"
    assert "agent.jwt.secret" not in proxy.seen[0]  # the token stays inside the TLS tunnel
    assert lookups == []  # the proxy resolves the broker's name, not this host


@pytest.mark.parametrize(
    "no_proxy",
    [
        "internal.example.org,vouch.example.com",
        "internal.example.org, example.com",
        ".example.com",
        "*.example.com:443",
        "VOUCH.EXAMPLE.COM",
        "*",
    ],
)
def test_no_proxy_sends_the_request_directly(
    monkeypatch: pytest.MonkeyPatch, lookups: list[str], no_proxy: str
) -> None:
    with RecordingProxy() as proxy:
        monkeypatch.setenv("https_proxy", f"http://{proxy.address}")
        monkeypatch.setenv("NO_PROXY", no_proxy)
        with pytest.raises(NetworkError, match="cannot reach the broker at https://vouch"):
            Transport(attempts=1).request("GET", URL)
    assert proxy.seen == []
    assert lookups == ["vouch.example.com"]


def test_loopback_brokers_are_never_proxied_unless_a_proxy_is_passed(
    monkeypatch: pytest.MonkeyPatch, lookups: list[str]
) -> None:
    with RecordingProxy() as proxy, FakeBroker() as broker:
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.setenv(name, f"http://{proxy.address}")
        broker.answer(200, {"direct": True})
        broker.answer(200, {"direct": True})
        local = broker.url.replace("127.0.0.1", "localhost")
        assert Transport().request("GET", f"{broker.url}/v1/x") == {"direct": True}
        assert Transport().request("GET", f"{local}/v1/x") == {"direct": True}
        assert proxy.seen == []
        asked = Transport(attempts=1, proxy=f"http://{proxy.address}")
        with pytest.raises(BrokerUnavailable, match="HTTP 502"):
            asked.request("GET", f"{broker.url}/v1/x")
    assert [head.split("\r\n")[0] for head in proxy.seen] == [f"GET {broker.url}/v1/x HTTP/1.1"]
    assert lookups == []


def test_a_proxy_that_is_not_http_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, lookups: list[str]
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError, match=r"proxy socks5://127.0.0.1:1080 .* http:// or https://"):
        Transport().request("GET", URL)
    assert lookups == []


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("vouch.example.com", 443, "example.com:8443", False),
        ("vouch.example.com", 443, "ample.com", False),
        ("vouch.example.com", 443, "", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("10.1.2.3", 443, "10.1.2.3", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("2001:db8::5", 443, "[2001:db8::5]:443", True),
        ("2001:db8::5", 443, "2001:db8::/32", True),
    ],
)
def test_no_proxy_entries(host: str, port: int, no_proxy: str, bypassed: bool) -> None:
    assert _no_proxy(host, port, no_proxy) is bypassed
