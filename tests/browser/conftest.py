"""Browser fixtures: the broker on real HTTP, and Debian's Chromium driven by Playwright.

`browser_page` gives each test a fresh, watched page on the broker (see
tests/harness/browser.py). A missing chromium fails these tests with the command that
installs it: they are never skipped.

Playwright's sync API marks the main thread as inside a running event loop for as long as
it runs, so `asyncio.run` there fails: the browser lives for this package only (other
tests in the same worker run without it), and code of ours that runs an event loop
(`make_invite`, ...) goes through `tests.harness.browser.off_the_loop`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ViewportSize, sync_playwright

from tests.harness.broker import BrokerServer, private_broker
from tests.harness.browser import BrowserPage, ChromiumMissing, PageWatch, launch, origin
from tests.harness.services import MotoServer

# A laptop's window; tests of a phone-sized page set their own viewport.
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    missing = ChromiumMissing.check()
    if missing:
        pytest.fail(missing, pytrace=False)
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def invocation_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The browser broker's usage source: a folder of invocation log files, as Bedrock
    delivers them to S3 (tests add theirs)."""
    return tmp_path_factory.mktemp("invocation-logs")


@pytest.fixture(scope="package")
def browser_broker(
    tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer, invocation_logs: Path
) -> Iterator[BrokerServer]:
    """A broker on http://localhost:PORT (Chromium allows WebAuthn on localhost, not on an
    IP address) with a redis-server of its own."""
    # Every page test comes from 127.0.0.1 and leaves requests pending: the per-address
    # bounds (tested on the API, which the pages share) would refuse the later tests.
    with private_broker(
        tmp_path_factory.mktemp("browser"),
        moto_server.url,
        rate_approvals_per_min=1000,
        rate_login_per_min=1000,
        rate_requests_per_min=1000,
        request_max_pending_per_address=100,
        usage_source=str(invocation_logs),
    ) as server:
        yield server


@pytest.fixture
def browser_page(
    browser: Browser, browser_broker: BrokerServer, request: pytest.FixtureRequest
) -> Iterator[BrowserPage]:
    """A fresh browser context (no cookies, no storage) with one watched page."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    watch = PageWatch(origin(browser_broker.url)).attach(page)
    yield BrowserPage(page, watch, browser_broker.url, request.node.name)
    context.close()
