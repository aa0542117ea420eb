"""`vouch-broker serve --workers 2`: the production entry point, several worker processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.harness.processes import BrokerProcess

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
