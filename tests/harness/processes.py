"""A broker as a separate OS process (`vouch-broker serve`), like a second replica."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from broker.settings import Settings
from tests.harness.services import free_port, wait_for


class BrokerProcess:
    """`vouch-broker serve` on its own port with the same settings (keys, Redis, policy)."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        *,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.workers = workers
        self.settings = settings
        self.log = log
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        s = self.settings
        values = {
            "VOUCH_ISSUER": s.issuer,
            "VOUCH_REDIS_URL": s.redis_url,
            "VOUCH_SIGNING_KEYS": s.signing_keys or "",
            "VOUCH_POLICY_FILE": s.policy_file,
            "VOUCH_ORIGINS": ",".join(s.origins),
            "VOUCH_ALLOW_SOFTWARE_KEYS": "true",
            "VOUCH_AWS_ENDPOINT_URL": s.aws.endpoint_url or "",
            "VOUCH_LOG_LEVEL": "WARNING",
            "VOUCH_EXPOSE_METRICS": "true" if s.expose_metrics else "",
            "VOUCH_EXPOSE_SCHEMA": "true" if s.expose_schema else "",
            # A process that will not stop is sent SIGABRT: every thread's stack to the log.
            "PYTHONFAULTHANDLER": "1",
        }
        return {**os.environ, **{k: v for k, v in values.items() if v}, **self.extra_env}

    def start(self) -> BrokerProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "broker.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1).status == 200,
            timeout=30,
            what="broker process",
        )
        return self

    def stop(self) -> None:
        """SIGTERM, as systemd or docker stop it; a broker still running 10 s later fails
        the test with where each of its threads was (faulthandler, on SIGABRT)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stacks = self.log.read_text(errors="replace")[-6000:]
            message = f"the broker did not stop within 10 s of SIGTERM:\n{stacks}"
            raise AssertionError(message) from None
