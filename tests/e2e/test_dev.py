"""`vouch-broker dev` (make run): its own redis-server and AWS emulator, stopped by Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import clean_env
from tests.harness.services import free_port, wait_for

pytestmark = pytest.mark.e2e

_SCRIPT = Path(sys.executable).with_name("vouch-broker")
BROKER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "broker.cli"]


def test_dev_serves_logs_a_deprecated_setting_once_and_stops_its_children(
    tmp_path: Path,
) -> None:
    port, redis_port, aws_port = free_port(), free_port(), free_port()
    env = {**clean_env(tmp_path), "VOUCH_STS_TIMEOUT_S": "2"}
    log = tmp_path / "dev.log"
    args = ["--port", port, "--redis-port", redis_port, "--aws-port", aws_port]
    with log.open("w") as out:
        proc = subprocess.Popen(  # from elsewhere than the checkout, as `make run` need not be
            [*BROKER, "dev", "--state-dir", str(tmp_path / "state"), *map(str, args)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_for(lambda: urllib.request.urlopen(ready, timeout=1).status == 200, 90, "vouch dev")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert f"  aws:   http://127.0.0.1:{aws_port}\n" in text
    warnings = [json.loads(line) for line in text.splitlines() if '"vouch.settings"' in line]
    assert [(w["level"], w["msg"]) for w in warnings] == [
        ("warning", "VOUCH_STS_TIMEOUT_S is deprecated: set VOUCH_AWS_STS_TIMEOUT_S instead")
    ]
    assert text.rstrip().endswith("vouch dev stack stopped.")
    for child_port in (redis_port, aws_port):  # redis-server and moto are gone
        wait_for(lambda p=child_port: _closed(p), 10, f"port {child_port} closed")


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
