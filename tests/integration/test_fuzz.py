"""The HTTP API fuzzed from its own OpenAPI schema with schemathesis, and every door with a body
fed raw bytes (invalid UTF-8, byte order marks, odd content types): no 5xx, every error a
problem+json with type, title, status and detail, security headers on every answer.

This is the short run of the default suite; `uv run python -m tests.fuzz --examples 2000` is
the long one (tests/fuzz/README.md).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fuzz.runner import SETTINGS, credentials, fuzz
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws

pytestmark = pytest.mark.integration

EXAMPLES = 12  # per operation, mode and set of credentials: ~2,000 cases, ~15 s


@pytest.fixture
def fuzz_broker(tmp_path: Path, redis_url: str, sts_gate: StsGate) -> Iterator[BrokerServer]:
    settings = broker_settings(tmp_path, redis_url, aws={"endpoint_url": sts_gate.url}, **SETTINGS)
    server = BrokerServer(settings).start()
    wire_aws(server, sts_gate)
    yield server
    server.stop()


def test_every_operation_keeps_the_error_contract_under_fuzzing(
    fuzz_broker: BrokerServer, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{fuzz_broker.port}"
    seed = random.SystemRandom().randrange(2**32)
    report = fuzz(base, credentials(fuzz_broker, tmp_path), examples=EXAMPLES, seed=seed)
    print(f"\nFIGURES fuzz: seed {seed}\n{report.summary()}")
    assert report.findings == [], (
        f"rerun: uv run python -m tests.fuzz --seed {seed} --examples {EXAMPLES}\n"
        + report.summary()
    )
    operations = {
        f"{method.upper()} {path}"
        for path, item in httpx.get(f"{base}/schema/openapi.json").json()["paths"].items()
        for method in item
    }
    assert set(report.cases) == operations  # every operation was exercised
    with_body = {
        f"{method.upper()} {path}"
        for path, item in httpx.get(f"{base}/schema/openapi.json").json()["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }
    assert set(report.raw_cases) == with_body  # raw bytes reached every door with a body
    assert all(n >= EXAMPLES for n in report.raw_cases.values())
    assert report.total >= 1_000
    assert {401, 400} <= set(report.statuses)  # the credentials and bad input got through
