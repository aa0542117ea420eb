"""`vouch-broker serve --workers 2`: the production entry point, several worker processes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.harness.processes import BrokerProcess
from tests.harness.services import wait_for

pytestmark = pytest.mark.integration


def test_two_workers_serve_exchanges_and_spread_connections(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    token = human_factory().delegate("researcher", ["us.claude-haiku-4-5"]).token
    served = BrokerProcess(broker.settings, tmp_path / "serve.log", workers=2).start()
    try:
        for _ in range(40):  # a new connection each time: the kernel picks a worker
            answer = httpx.post(
                f"{served.base_url}/v1/credentials/aws",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
        # Each worker keeps its own metrics registry. Had one worker taken every connection
        # it would report all 40 exchanges; any worker reporting between 1 and 39 shows the
        # 40 were split.
        counts = set()
        for _ in range(20):
            text = httpx.get(f"{served.base_url}/metrics", timeout=10).text
            prefix = 'vouch_http_requests_total{route="/v1/credentials/aws"'
            line = next((x for x in text.splitlines() if x.startswith(prefix)), "none 0")
            counts.add(float(line.rsplit(" ", 1)[1]))
        assert any(0 < count < 40 for count in counts), counts
        assert 40.0 not in counts, counts
    finally:
        served.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log


def test_serve_logs_each_deprecated_setting_once_for_all_workers(
    broker: BrokerServer, tmp_path: Path
) -> None:
    old = {"VOUCH_STS_TIMEOUT_S": "2", "VOUCH_STS_ASSERTION_TTL_S": "240"}
    env = {**old, "VOUCH_LOG_LEVEL": "INFO"}  # INFO: each worker logs its startup
    log = tmp_path / "serve.log"
    served = BrokerProcess(broker.settings, log, workers=2, extra_env=env).start()
    try:  # both workers have read the settings too
        wait_for(lambda: log.read_text().count("Application startup complete") == 2)
    finally:
        served.stop()
    warnings = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if '"logger":"vouch.settings"' in line
    ]
    assert [(w["level"], w["msg"]) for w in warnings] == [
        ("warning", "VOUCH_STS_TIMEOUT_S is deprecated: set VOUCH_AWS_STS_TIMEOUT_S instead"),
        (
            "warning",
            "VOUCH_STS_ASSERTION_TTL_S is deprecated: set VOUCH_AWS_STS_ASSERTION_TTL_S instead",
        ),
    ]


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it
    (`limit_s` if it never did)."""
    started, received = time.monotonic(), b""
    sock.settimeout(0.1)
    while time.monotonic() - started < limit_s:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, limit_s


def test_serve_closes_connections_whose_request_head_is_too_slow(
    broker: BrokerServer, tmp_path: Path
) -> None:
    """Slowloris: a client that connects and sends nothing, or trickles its headers, is cut
    off after the header timeout with 408; normal and kept-alive requests are unaffected."""
    timeout_s = 1.0
    env = {"VOUCH_HTTP_HEADER_TIMEOUT_S": str(timeout_s)}
    served = BrokerProcess(broker.settings, tmp_path / "serve.log", extra_env=env).start()
    address = ("127.0.0.1", served.port)
    try:
        with socket.create_connection(address) as silent:  # never sends a byte
            said, closed_after = read_until_closed(silent, limit_s=5 * timeout_s)
        assert closed_after < timeout_s + 0.5
        assert said.startswith(b"HTTP/1.1 408 "), said
        with socket.create_connection(address) as trickle:
            trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            for n in range(10):  # one header line every 0.3 s: each byte in time, never done
                time.sleep(0.3)
                try:
                    trickle.sendall(f"X-Slow-{n}: 1\r\n".encode())
                except OSError:  # closed by the server
                    break
            said, _ = read_until_closed(trickle, limit_s=5 * timeout_s)
            closed_after = time.monotonic() - started
        assert said.startswith(b"HTTP/1.1 408 "), said
        assert closed_after < timeout_s + 1.0
        with httpx.Client(base_url=served.base_url, timeout=10) as client:  # keep-alive
            assert client.get("/healthz").status_code == 200
            time.sleep(1.5 * timeout_s)  # idle between requests: the keep-alive timeout's job
            assert client.get("/healthz").status_code == 200
    finally:
        served.stop()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
