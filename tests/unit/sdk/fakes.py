"""Test doubles for the SDK's one seam, the transport, a scripted broker on real HTTP, and a
clock the tests move."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vouch_delegate import Transport
from vouch_delegate.authenticators import DEFAULT_PIN
from vouch_delegate.cli._key import Key

Answer = dict[str, Any] | Exception | Callable[[], dict[str, Any]]


class FakeTransport(Transport):
    """Answers requests from a script (dicts, exceptions or callables) and records them."""

    def __init__(self, *answers: Answer) -> None:
        super().__init__(sleep=lambda _: None)
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.requests.append({"method": method, "url": url, **kwargs})
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer() if callable(answer) else answer


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def document(expires_at: float, key: str = "ASIAEXAMPLE") -> dict[str, Any]:
    """A credential_process document as the broker answers it."""
    stamp = datetime.fromtimestamp(expires_at, tz=UTC).isoformat().replace("+00:00", "Z")
    return {
        "Version": 1,
        "AccessKeyId": key,
        "SecretAccessKey": "secret",
        "SessionToken": "session",
        "Expiration": stamp,
    }


def fake_jwt(claims: dict[str, Any]) -> str:
    """An unsigned token shaped like a JWS (the SDK never verifies; the broker does)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'ES256', 'typ': 'vouch-agent+jwt'})}.{part(claims)}.c2ln"


@dataclass(frozen=True)
class Seen:
    """One request as it reached the fake broker."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization")
        return value.removeprefix("Bearer ") if value else None


class FakeBroker:
    """A real HTTP server on a loopback port, in a thread: scripted answers, recorded requests.

    `answer(status, body)` queues a reply (a dict or list as JSON, bytes as they are); each
    request takes the next one.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.replies: list[tuple[int, bytes, str, Callable[[], object] | None]] = []
        self.seen: list[Seen] = []
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                broker.seen.append(
                    Seen(
                        self.command,
                        parts.path,
                        parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()},
                        self.rfile.read(length),
                    )
                )
                status, body, kind, before = (
                    broker.replies.pop(0) if broker.replies else (599, b"", "", None)
                )
                if before is not None:
                    before()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

            def log_message(self, *args: Any) -> None:  # quiet: pytest shows what failed
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        # A short poll interval: shutdown() waits for it, once per test.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        *,
        before: Callable[[], object] | None = None,
    ) -> None:
        """Queue a reply; `before` runs when its request arrives, before it is sent."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.replies.append((status, data, content_type, before))

    def __enter__(self) -> FakeBroker:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def signed_proposal(grant: dict[str, Any]) -> dict[str, Any]:
    """A delegation proposal whose challenge honestly commits to `grant` (as a broker's)."""
    canonical = json.dumps(grant, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(b"vouch-grant-v1\x00" + canonical.encode()).digest()
    challenge = base64.urlsafe_b64encode(b"\x07" * 16 + digest).decode().rstrip("=")
    return {
        "challenge_id": "c" * 32,
        "grant": grant,
        "grant_canonical": canonical,
        "options": {"publicKey": {"challenge": challenge, "rpId": "localhost"}},
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def enrolled_soft_key(path: Path, origin: str, email: str = "alice@example.com") -> str:
    """A software key file holding a discoverable credential for rp id localhost, made by
    the CLI's own Key (python-fido2's client); its `soft:` spec. The PIN is DEFAULT_PIN."""
    spec = f"soft:{path}"
    Key(spec, origin, {"VOUCH_PIN": DEFAULT_PIN}, io.StringIO()).register(
        {
            "rp": {"id": "localhost", "name": "Vouch"},
            "user": {"id": b64url(email.encode()), "name": email, "displayName": email},
            "challenge": b64url(os.urandom(32)),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
            "attestation": "none",
        }
    )
    return spec


class RecordingProxy:
    """An HTTP proxy on a loopback port that records each request head and refuses it (502).

    Enough to see where a client sends what: a CONNECT for an https target, the absolute
    URL for a plain http one; nothing is forwarded anywhere.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = self.rfile.readline(65536)
                    if not line:
                        break
                    head += line
                proxy.seen.append(head.decode("latin-1"))
                self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
