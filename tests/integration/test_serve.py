"""`vouch-broker serve --workers 2`: the production entry point, several worker processes."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
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
    log = tmp_path / "serve.log"
    env = {"VOUCH_LOG_LEVEL": "INFO"}  # the access log names the worker (pid) of each request
    served = BrokerProcess(broker.settings, log, workers=2, extra_env=env).start()
    try:
        for _ in range(40):  # a new connection each time: the kernel picks a worker
            answer = httpx.post(
                f"{served.base_url}/v1/credentials/aws",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
    finally:
        served.stop()
    # Had one worker taken every connection it would have served all 40 exchanges; both
    # serving between 1 and 39 shows the 40 were split.
    served_by = Counter(
        entry["pid"]
        for entry in (json.loads(line) for line in log.read_text().splitlines() if "{" in line)
        if entry.get("logger") == "vouch.access" and entry.get("route") == "/v1/credentials/aws"
    )
    assert sum(served_by.values()) == 40, served_by
    assert len(served_by) == 2 and all(0 < n < 40 for n in served_by.values()), served_by
    assert "Traceback" not in log.read_text()


def metric(text: str, line_prefix: str) -> float:
    """The value of the one sample whose line starts with `line_prefix` (0 if absent)."""
    line = next((x for x in text.splitlines() if x.startswith(line_prefix)), "none 0")
    return float(line.rsplit(" ", 1)[1])


def test_two_workers_metrics_add_up_and_never_go_backwards(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    """Each scrape reaches whichever worker the kernel picks; every scrape must still show
    the total over both workers, so counters only ever grow."""
    token = human_factory().delegate("researcher", ["us.claude-haiku-4-5"]).token
    served = BrokerProcess(broker.settings, tmp_path / "serve.log", workers=2).start()
    exchanged = 'vouch_http_requests_total{route="/v1/credentials/aws",status="200"}'
    sts_ok = 'vouch_sts_calls_total{outcome="ok"}'
    seen: list[tuple[float, float]] = []
    try:
        for n in range(1, 13):
            # A new duration each time: a new grant, so every exchange is one STS call,
            # made by whichever worker took the connection.
            answer = httpx.post(
                f"{served.base_url}/v1/credentials/aws",
                headers={"Authorization": f"Bearer {token}"},
                json={"duration_s": 900 + 60 * n},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            for _ in range(3):
                text = httpx.get(f"{served.base_url}/metrics", timeout=10).text
                seen.append((metric(text, exchanged), metric(text, sts_ok)))
                assert seen[-1] == (n, n), (n, seen)
    finally:
        served.stop()
    assert seen == sorted(seen)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_serve_empties_an_operators_metrics_directory_of_an_earlier_run_and_keeps_it(
    broker: BrokerServer, tmp_path: Path
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_999999.db").write_bytes(b"left by an earlier run")
    (shared / "notes.txt").write_text("not prometheus-client's")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    served = BrokerProcess(broker.settings, tmp_path / "serve.log", workers=2, extra_env=env)
    served.start()
    try:
        text = httpx.get(f"{served.base_url}/metrics", timeout=10).text
        assert metric(text, 'vouch_sts_calls_total{outcome="ok"}') == 0
        assert 'vouch_sts_calls_total{outcome="ok"} 0.0' in text  # there, before any call
    finally:
        served.stop()
    assert not (shared / "counter_999999.db").exists()
    assert (shared / "notes.txt").exists()
    assert sorted(p.name.split("_")[0] for p in shared.glob("*.db"))  # the workers' own


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
