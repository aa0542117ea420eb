"""Run the broker app on a free loopback port in a background thread (real HTTP)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from broker.app import create_app
from broker.invites import invite_from_host
from broker.keys import generate_key_dir
from broker.settings import Settings, load_settings
from tests.harness.services import RedisServer, free_port, wait_for


def broker_settings(tmp: Path, redis_url: str, **overrides: Any) -> Settings:
    """Settings for a test broker on localhost with a fresh key directory."""
    keys = tmp / "keys"
    if not keys.exists():
        generate_key_dir(keys)
    port = overrides.pop("port", None) or free_port()
    values: dict[str, Any] = {
        "issuer": f"http://localhost:{port}",
        "redis_url": redis_url,
        "signing_keys": str(keys),
        "redis_timeout_s": 0.5,
        "allow_software_keys": True,
        # Tests read metrics and fuzz from the schema; production serves neither by default
        # (test_exchange_attacks.py::test_metrics_and_schema_are_closed_...).
        "expose_metrics": True,
        "expose_schema": True,
        **overrides,
    }
    return load_settings(env={}, **values)


class BrokerServer:
    """uvicorn serving `create_app(settings)` in a thread; `url` is the issuer."""

    def __init__(self, settings: Settings, *, port: int | None = None) -> None:
        """`port`: where to listen when not the issuer's (another replica of one issuer)."""
        self.settings = settings
        self.port = port or int(settings.issuer.rsplit(":", 1)[1])
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return self.settings.issuer

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> BrokerServer:
        self.thread.start()
        wait_for(lambda: self.server.started, what="broker")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=10)


def make_invite(settings: Settings, email: str) -> str:
    """What `vouch-broker invite EMAIL` does on the server host."""
    return invite_from_host(settings.redis_url, email, ttl_s=settings.invite_ttl_s)


@contextmanager
def private_broker(tmp: Path, aws_endpoint_url: str, **overrides: Any) -> Iterator[BrokerServer]:
    """A broker on real HTTP with a redis-server of its own, its AWS calls sent to the emulator.

    The shared redis-server is flushed by other tests' fixtures, which would wipe enrolled
    keys and sessions from under a broker that outlives one test.
    """
    redis = RedisServer(tmp / "redis").start()
    try:
        settings = broker_settings(
            tmp / "broker", redis.url, aws={"endpoint_url": aws_endpoint_url}, **overrides
        )
        server = BrokerServer(settings).start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        redis.stop()
