"""STS's wire format for the gate: AWS query-protocol error documents and the HTTP handler."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.sax.saxutils import escape

from tests.harness.sts_checks import StsError

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "text/xml"
    headers: Mapping[str, str] = field(default_factory=dict)


App = Callable[[str, str, Mapping[str, str], bytes], Reply]
"""(method, path with query, request headers, body) -> Reply."""


def error_reply(error: StsError) -> Reply:
    """The ErrorResponse document botocore turns into ClientError(code, message)."""
    request_id = str(uuid.uuid4())
    body = (
        f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>{error.fault}</Type>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Reply(error.status, body.encode("utf-8"), headers={"x-amzn-RequestId": request_id})


def handler_for(app: App) -> type[BaseHTTPRequestHandler]:
    """A request handler class that serves every GET and POST with `app`."""
    return type("StsHandler", (_Handler,), {"app": staticmethod(app)})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: App

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = self.app(method, self.path, dict(self.headers.items()), body)
        except Exception as exc:  # e.g. moto unreachable: answer loudly, never hang the client
            reply = error_reply(StsError("InternalFailure", f"sts gate: {exc!r}", 500, "Receiver"))
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, e.g. its read timeout during delay_next

    def log_message(self, format: str, *args: Any) -> None:
        pass
