"""The /schema viewer page and its files: nothing inline, nothing from another origin."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest

from tests.harness.broker import BrokerServer

pytestmark = pytest.mark.integration

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"


class Markup(HTMLParser):
    """Every tag with its attributes, and whether any script or style sits in the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        self.inline += [f"{tag} {name}" for name in found if name == "style" or name[:2] == "on"]
        self._open = tag

    def handle_data(self, data: str) -> None:
        if self._open in ("script", "style") and data.strip():
            self.inline.append(f"{self._open}: {data.strip()[:40]}")


def test_the_viewer_page_loads_its_own_files_only(broker: BrokerServer) -> None:
    with broker.client() as http:
        for path in ("/schema", "/schema/swagger"):
            page = http.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            markup = Markup()
            markup.feed(page.text)
            assert markup.inline == []
            loads = [
                (tag, attrs.get("src") or attrs.get("href"))
                for tag, attrs in markup.tags
                if tag in ("script", "link")
            ]
            assert loads == [
                ("link", "data:,"),  # no favicon request
                ("link", "/schema/assets/swagger-ui.css"),
                ("script", "/schema/assets/swagger-ui-bundle.js"),
                ("script", "/schema/assets/viewer.js"),
            ]
            (root,) = [attrs for tag, attrs in markup.tags if attrs.get("id") == "swagger-ui"]
            assert root["data-spec-url"] == "/schema/openapi.json"


def test_the_viewer_files_and_the_schema_keep_the_closed_policy(broker: BrokerServer) -> None:
    with broker.client() as http:
        served = {
            name: http.get(f"/schema/assets/{name}")
            for name in ("swagger-ui-bundle.js", "swagger-ui.css", "viewer.js")
        }
        assert {name: a.headers["content-type"] for name, a in served.items()} == {
            "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
            "swagger-ui.css": "text/css; charset=utf-8",
            "viewer.js": "text/javascript; charset=utf-8",
        }
        assert "SwaggerUIBundle({" in served["viewer.js"].text
        answers = [*served.values(), http.get("/schema/openapi.json")]
        answers.append(http.get("/schema/openapi.yaml"))
        for answer in answers:
            assert answer.status_code == 200, answer.url
            assert answer.headers["content-security-policy"] == DEFAULT_CSP, answer.url
        for missing in ("/schema/assets/LICENSE", "/schema/assets/..%2Fschema_viewer.py"):
            assert_not_found(http.get(missing))
        # Litestar's CDN-backed viewers are not served.
        for gone in ("/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/scalar"):
            answer = http.get(gone)
            assert answer.status_code == 404, gone
            assert answer.headers["content-security-policy"] == DEFAULT_CSP, gone


def assert_not_found(answer: httpx.Response) -> None:
    assert answer.status_code == 404, answer.url
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:vouch:problem:not-found"
