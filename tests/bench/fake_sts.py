"""A zero-latency STS for benchmarks: answers AssumeRoleWithWebIdentity at once, checks nothing.

Run as its own process (`python -m tests.bench.fake_sts PORT`) so that its CPU is not the
broker's. It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for botocore.
`GET /calls` answers how many AssumeRoleWithWebIdentity calls it has served, so a benchmark
can prove that cache hits made no STS call. What the broker sends is not checked: the
integration tests do that through the STS gate; here only the broker's own cost matters.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from urllib.parse import parse_qsl

_REPLY = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA{key}</AccessKeyId>
<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session}</SessionToken>
<Expiration>{expiration}</Expiration></Credentials>
<AssumedRoleUser><AssumedRoleId>AROABENCH:{name}</AssumedRoleId>
<Arn>arn:aws:sts::123456789012:assumed-role/vouch-agents/{name}</Arn></AssumedRoleUser>
<PackedPolicySize>6</PackedPolicySize></AssumeRoleWithWebIdentityResult>
<ResponseMetadata><RequestId>{request}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""


class StsProtocol(asyncio.Protocol):
    calls = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
            self.transport.write(self.answer(head.split(" ", 2), body))

    def answer(self, request_line: list[str], body: bytes) -> bytes:
        if request_line[0] == "GET" and request_line[1].startswith("/calls"):
            return _http(200, str(StsProtocol.calls).encode(), "text/plain")
        form = dict(parse_qsl(body.decode()))
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            return _http(400, b"<Error><Code>InvalidAction</Code></Error>", "text/xml")
        StsProtocol.calls += 1
        expires = time.time() + int(form.get("DurationSeconds", "3600"))
        xml = _REPLY.format(
            key=secrets.token_hex(8).upper(),
            secret=secrets.token_urlsafe(30),
            session=secrets.token_urlsafe(300),
            expiration=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            name=form.get("RoleSessionName", "bench"),
            request=secrets.token_hex(16),
        )
        return _http(200, xml.encode(), "text/xml")


def _http(status: int, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(StsProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
