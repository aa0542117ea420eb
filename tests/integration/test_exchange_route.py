"""The agent exchange served in front of Litestar (broker/exchange_route.py) answers with the
same bytes as the Litestar route it stands in for: success and every problem, over real
HTTP, a real redis-server and the STS gate. Each request goes once through the front and
once with it taken out (`ExchangeRoutes.litestar`, what the app was before), and the two raw
HTTP answers must be equal but for the Date header and the request id."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.types import ASGIApp, Receive, Scope, Send
from vouch_delegate import AgentKey

from broker.exchange_route import ExchangeRoutes
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import Human
from tests.harness.services import RedisServer
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws
from tests.integration.test_exchange_attacks import claims_of, resigned, token_of

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
EXCHANGE = "/v1/credentials/aws"
VARYING = re.compile(rb"^(date|x-request-id): .*$", re.MULTILINE | re.IGNORECASE)


def raw(server: BrokerServer, request: bytes) -> bytes:
    """One HTTP/1.1 exchange on a fresh connection: the whole answer as sent."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def post(
    token: str | None = None,
    body: bytes = b"",
    *,
    scheme: str = "Bearer",
    headers: tuple[tuple[str, str], ...] = (),
    path: str = EXCHANGE,
    method: str = "POST",
    host: str = "localhost",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: {scheme} {token}".rstrip())
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture
def front(broker: BrokerServer) -> Iterator[ExchangeRoutes]:
    routes = broker.app.asgi_handler
    assert isinstance(routes, ExchangeRoutes)
    yield routes
    broker.app.asgi_handler = routes


class Passed:
    """Litestar's handler behind the front, noting whether the front passed it the request
    (a cache miss also has the STS emulator read the broker's discovery documents)."""

    def __init__(self, litestar: ASGIApp, path: bytes) -> None:
        self.litestar = litestar
        self.path = path.decode()
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.path):
            self.requests += 1
        await self.litestar(scope, receive, send)


def both(server: BrokerServer, front: ExchangeRoutes, request: bytes) -> tuple[bytes, bytes, bool]:
    """The answer through the front, then through Litestar's route alone; and whether the
    front answered itself (rather than passing the request to Litestar)."""
    litestar = front.litestar
    passed = Passed(litestar, request.split(b" ", 2)[1])
    front.litestar = passed
    try:
        fast = raw(server, request)
    finally:
        front.litestar = litestar
    server.app.asgi_handler = litestar
    try:
        slow = raw(server, request)
    finally:
        server.app.asgi_handler = front
    return fast, slow, passed.requests == 0


def same(server: BrokerServer, front: ExchangeRoutes, request: bytes, *, served: bool) -> bytes:
    """Assert both answers are the same bytes (Date and request id aside) and that the front
    answered itself when `served`, else passed the request on: the answer."""
    fast, slow, answered = both(server, front, request)
    assert VARYING.sub(b"\\1: -", fast) == VARYING.sub(b"\\1: -", slow)
    assert re.search(rb"(?im)^x-request-id: [0-9a-f]{16}\r$", fast), fast
    assert answered == served, fast
    return fast


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_success_and_every_problem_are_the_same_bytes(
    broker: BrokerServer, front: ExchangeRoutes, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    token = token_of(alice.delegate("researcher", [HAIKU]))
    revoked = alice.delegate("revoked", [HAIKU])
    alice.revoke(revoked.delegation.id)
    claims = claims_of(token)
    now = int(time.time())
    expired = resigned(broker, {**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})
    tampered = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    served = {
        # served by the front
        "success": (post(token), 200),
        "success, DPoP scheme, unbound": (post(token, scheme="DPoP"), 200),
        "success, body null": (post(token, b"null"), 200),
        "success, models": (post(token, b'{"models": ["us.claude-haiku-4-5"]}'), 200),
        "success, models and duration": (
            post(token, b'{"models":["us.claude-haiku-4-5"],"duration_s":900}'),
            200,
        ),
        "no Authorization": (post(None), 401),
        "Basic scheme": (post("dXNlcjpwYXNz", scheme="Basic"), 401),
        "empty bearer": (post("", scheme="Bearer"), 401),
        "not a JWT": (post("not.a.jwt"), 401),
        "tampered signature": (post(tampered), 401),
        "expired": (post(expired), 401),
        "revoked": (post(token_of(revoked)), 401),
        "model outside the grant": (post(token, b'{"models": ["us.claude-opus-4-1"]}'), 403),
        "duration beyond the token": (post(token, b'{"duration_s": 43200}'), None),
    }
    # Litestar's own decoding, validation, size limit and routing
    passed = {
        "empty models": (post(token, b'{"models": []}'), 400),
        "duration too short": (post(token, b'{"duration_s": 5}'), 400),
        "duration as a string": (post(token, b'{"duration_s": "900"}'), None),
        "unknown member": (post(token, b'{"nope": 1}'), 400),
        "not JSON": (post(token, b"{"), 400),
        "an array": (post(token, b"[]"), 400),
        "whitespace only": (post(token, b"   "), 400),
        "not UTF-8": (post(token, b'{"models": ["\xff"]}'), 400),
        "nested too deeply": (post(token, b"[" * 10_000), 400),
        "too large": (post(token, b'{"models": [' + b'"x",' * 20000 + b'"x"]}'), 413),
        "invalid Host": (post(token, host="bad host!"), 400),
        "trailing slash": (post(token, path=EXCHANGE + "/"), None),
        "GET": (post(token, method="GET"), 405),
        "own credentials route": (post(token, path=EXCHANGE + "/self"), 401),
    }
    for cases, by_front in ((served, True), (passed, False)):
        for name, (request, expected) in cases.items():
            answer = same(broker, front, request, served=by_front)
            if expected is not None:
                assert status(answer) == expected, (name, answer)


def test_bound_tokens_and_their_proof_problems_are_the_same_bytes(
    broker: BrokerServer, front: ExchangeRoutes, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    key = AgentKey.generate()
    token = token_of(alice.delegate("bound", [HAIKU], bind_key=key.thumbprint))
    url = broker.settings.issuer + EXCHANGE

    def proof() -> tuple[str, str]:
        return ("DPoP", key.proof("POST", url, token))

    # A proof is good once, so each side gets its own; the answers are otherwise the same.
    fast = raw(broker, post(token, scheme="DPoP", headers=(proof(),)))
    broker.app.asgi_handler = front.litestar
    slow = raw(broker, post(token, scheme="DPoP", headers=(proof(),)))
    broker.app.asgi_handler = front
    assert status(fast) == 200
    assert VARYING.sub(b"\\1: -", fast) == VARYING.sub(b"\\1: -", slow)

    replayed = proof()
    assert status(raw(broker, post(token, scheme="DPoP", headers=(replayed,)))) == 200
    cases = {
        "no proof": post(token, scheme="DPoP"),
        "no proof, Bearer": post(token),
        "two proofs": post(token, scheme="DPoP", headers=(proof(), proof())),
        "replayed proof": post(token, scheme="DPoP", headers=(replayed,)),
        "proof for another URL": post(
            token, scheme="DPoP", headers=(("DPoP", key.proof("POST", url + "x", token)),)
        ),
        "proof of another key": post(
            token,
            scheme="DPoP",
            headers=(("DPoP", AgentKey.generate().proof("POST", url, token)),),
        ),
        "not a proof": post(token, scheme="DPoP", headers=(("DPoP", "garbage"),)),
    }
    for name, request in cases.items():
        answer = same(broker, front, request, served=True)
        assert status(answer) in {400, 401}, (name, answer)
        assert b"www-authenticate: DPoP" in answer.lower().replace(b"dpop", b"DPoP"), name


def test_a_rate_capped_delegation_is_refused_with_the_same_bytes(
    broker: BrokerServer, front: ExchangeRoutes, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    claims = claims_of(token_of(alice.delegate("capped", [HAIKU])))
    token = resigned(broker, {**claims, "rate": 1})
    assert status(raw(broker, post(token))) == 200  # the one use this hour
    fast, slow, answered = both(broker, front, post(token))
    assert answered
    # Retry-After counts down to the hour: the two answers may fall in different seconds.
    after = re.compile(rb"(?im)^(retry-after): \d+\r$")
    assert status(fast) == 429
    assert after.sub(b"\\1: -", VARYING.sub(b"\\1: -", fast)) == after.sub(
        b"\\1: -", VARYING.sub(b"\\1: -", slow)
    )


@pytest.fixture
def on_private_redis(
    tmp_path: Path, aof_redis: RedisServer, sts_gate: StsGate
) -> Iterator[BrokerServer]:
    settings = broker_settings(tmp_path, aof_redis.url, aws={"endpoint_url": sts_gate.url})
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


def test_redis_down_is_the_same_503(
    on_private_redis: BrokerServer, aof_redis: RedisServer, tmp_path: Path
) -> None:
    from tests.harness.people import signed_in

    alice = signed_in(on_private_redis, "alice@example.com", tmp_path / "alice.json")
    token = token_of(alice.delegate("researcher", [HAIKU]))
    routes = on_private_redis.app.asgi_handler
    assert isinstance(routes, ExchangeRoutes)
    assert status(raw(on_private_redis, post(token))) == 200
    aof_redis.stop(kill=True)
    answer = same(on_private_redis, routes, post(token), served=True)
    assert status(answer) == 503
    assert b"\r\nretry-after: 1\r\n" in answer
    aof_redis.start()
    assert status(same(on_private_redis, routes, post(token), served=True)) == 200
