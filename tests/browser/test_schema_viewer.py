"""The OpenAPI viewer at /schema renders in a real browser under the broker's own policy."""

from __future__ import annotations

import pytest

from tests.harness.broker import BrokerServer, make_invite
from tests.harness.browser import BrowserPage, off_the_loop

pytestmark = pytest.mark.browser

# Scripts, styles, the schema and "Try it out" from the broker's origin; Swagger UI's icons
# are data: URIs. Nothing inline, nothing from elsewhere.
VIEWER_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
OPERATION = '.opblock-summary-path[data-path="/v1/credentials/aws"]'


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_the_viewer_renders_every_operation_from_the_broker_alone(
    browser_page: BrowserPage, browser_broker: BrokerServer, path: str
) -> None:
    answer = browser_page.goto(path)
    assert answer is not None and answer.status == 200
    assert answer.headers["content-security-policy"] == VIEWER_CSP
    page = browser_page.page
    page.locator(OPERATION).wait_for(timeout=20_000)
    browser_page.screenshot("top", full_page=False)
    with browser_broker.client() as http:
        documented = set(http.get("/schema/openapi.json").json()["paths"])
    shown = set(
        page.locator(".opblock-summary-path").evaluate_all("ns => ns.map(n => n.dataset.path)")
    )
    assert shown == documented
    page.locator(OPERATION).click()  # unfolds: the exchange's parameters and answers
    opened = page.locator(".opblock.is-open")
    opened.locator(".responses-wrapper").wait_for()
    assert (
        opened.locator(".opblock-summary-path").get_attribute("data-path") == "/v1/credentials/aws"
    )
    assert page.title() == "Vouch broker"
    method = opened.locator(".opblock-summary-method")  # the stylesheet applies: POST is green
    assert method.evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(73, 204, 144)"
    opened.evaluate("node => node.scrollIntoView()")
    browser_page.screenshot("exchange", full_page=False)
    browser_page.assert_clean()
    requested = {url.removeprefix(browser_broker.url) for url in browser_page.watch.requests}
    assert requested == {
        path,
        "/schema/assets/swagger-ui.css",
        "/schema/assets/swagger-ui-bundle.js",
        "/schema/assets/viewer.js",
        "/schema/openapi.json",
    }


def test_the_watch_sees_what_the_policy_blocks(browser_page: BrowserPage) -> None:
    """The page watch is what makes the test above mean something: an inline script and an
    image from another origin (loopback, never sent) are refused and reported."""
    browser_page.goto("/schema")
    browser_page.page.locator(OPERATION).wait_for(timeout=20_000)
    browser_page.page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.inlineRan = true";
          document.body.append(script);
          const image = document.createElement("img");
          image.src = "http://127.0.0.1:9/elsewhere.png";
          document.body.append(image);
        }"""
    )
    watch = browser_page.watch
    for _ in range(50):  # the violation events arrive asynchronously
        if len(watch.csp_violations) >= 2:
            break
        browser_page.page.wait_for_timeout(100)
    assert browser_page.page.evaluate("() => window.inlineRan") is None
    assert sorted(watch.csp_violations) == [
        "img-src blocked http://127.0.0.1:9/elsewhere.png",
        "script-src-elem blocked inline",
    ]
    assert len(watch.console_errors) == 2  # Chromium's own words for the same two
    assert watch.foreign_requests == ["http://127.0.0.1:9/elsewhere.png"]
    assert watch.failed_requests == ["http://127.0.0.1:9/elsewhere.png: csp"]


def test_asyncio_code_of_ours_runs_beside_the_browser(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    """What later browser tests need: an invite made on the server host while a page is open."""
    browser_page.goto("/schema")  # Playwright is running: asyncio.run here would refuse
    code = off_the_loop(make_invite, browser_broker.settings, "bob@example.com")
    assert len(code) > 10
