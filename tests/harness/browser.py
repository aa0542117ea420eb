"""Debian's Chromium driven by Playwright, and a record of what a page did wrong.

Nothing here downloads a browser: Playwright launches the `chromium` package's executable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response

CHROMIUM = Path(os.environ.get("VOUCH_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
# Screenshots and other files a person looks at after a run (kept, unlike tmp_path).
ARTIFACTS = Path(os.environ.get("VOUCH_TEST_ARTIFACTS", ROOT / ".artifacts")) / "browser"

# Reports each Content-Security-Policy violation to the test, whatever the page's own
# scripts do (init scripts and bindings are outside the page's CSP).
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.vouchCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


P = ParamSpec("P")
T = TypeVar("T")


def off_the_loop(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(...)` in a thread of its own: while Playwright's sync API runs, the main thread
    counts as inside an event loop, and `asyncio.run` refuses to start there."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call, *args, **kwargs).result()


class ChromiumMissing(RuntimeError):
    """Debian's chromium is not installed where the browser tests look for it."""

    @staticmethod
    def check() -> str | None:
        """What to do when there is no executable at CHROMIUM; None when there is one."""
        if os.access(CHROMIUM, os.X_OK):
            return None
        return (
            f"the browser tests need Debian's chromium at {CHROMIUM}: "
            "`sudo apt-get install chromium` (or set VOUCH_CHROMIUM to another Chromium); "
            "they never download a browser"
        )


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium from the `chromium` package (sandboxed unless running as root).

    Raises:
        ChromiumMissing: there is no executable at CHROMIUM.
    """
    if missing := ChromiumMissing.check():
        raise ChromiumMissing(missing)
    # Chromium refuses its sandbox to root; containers and CI run as root.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class PageWatch:
    """What a page of `origin` asked for, and what went wrong: on a clean page, every list
    but `requests` stays empty."""

    origin: str
    requests: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    error_responses: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> PageWatch:
        page.expose_function("vouchCspViolation", self._csp_violation)
        page.add_init_script(_REPORT_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", self._request)
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        return self

    def _csp_violation(self, report: str) -> None:
        self.csp_violations.append(report)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)
        if not re.match(r"(data|blob):", request.url) and origin(request.url) != self.origin:
            self.foreign_requests.append(request.url)

    def _request_failed(self, request: Request) -> None:
        self.failed_requests.append(f"{request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.error_responses.append(f"{response.status} {response.url}")

    def problems(self) -> dict[str, list[str]]:
        """The non-empty lists by name."""
        found = {
            "csp_violations": self.csp_violations,
            "console_errors": self.console_errors,
            "page_errors": self.page_errors,
            "failed_requests": self.failed_requests,
            "foreign_requests": self.foreign_requests,
            "error_responses": self.error_responses,
        }
        return {name: items for name, items in found.items() if items}


@dataclass
class BrowserPage:
    """A Playwright page on the broker at `base_url`, watched, with screenshots kept."""

    page: Page
    watch: PageWatch
    base_url: str
    name: str

    def goto(self, path: str) -> Response | None:
        return self.page.goto(self.base_url + path)

    def screenshot(self, label: str = "", *, full_page: bool = True) -> Path:
        """Save the page as ARTIFACTS/<test name>[-label].png and return the path."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "-", self.name).strip("-")  # test_x[/schema]: test_x-schema
        path = ARTIFACTS / f"{stem}-{label}.png" if label else ARTIFACTS / f"{stem}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_accessible(self) -> None:
        """axe-core (run in the page, WCAG 2.x A and AA rules) finds nothing on the page."""
        options = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]}}
        results = Axe().run(self.page, options={"resultTypes": ["violations"], **options})
        assert results.violations_count == 0, results.generate_report()

    def assert_clean(self) -> None:
        """No CSP violation, script error, failed, foreign or refused request so far."""
        assert not self.watch.problems(), self.watch.problems()
