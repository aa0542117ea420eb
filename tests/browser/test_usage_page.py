"""My usage in the browser: a person's Bedrock calls and their agents', per delegation, at
the broker's prices, and everyone's for an admin, read from invocation log files as Bedrock
delivers them (the browser broker's usage source is a folder: tests/browser/conftest.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from policies.attribution import agent_session_name
from tests.browser.conftest import VIEWPORT
from tests.browser.test_admin_pages import PHONE, admin_signs_in
from tests.browser.test_pages import person
from tests.harness.broker import BrokerServer, private_broker
from tests.harness.browser import BrowserPage, PageWatch, origin
from tests.harness.services import MotoServer
from tests.unit.policies.invocation_records import record

pytestmark = pytest.mark.browser

HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"  # $1 in, $5 out per 1M (prices.toml)
UNPRICED = "anthropic.claude-unpriced-v9"
DLG = "dlg_UsagePage000000A"
AGENT_ROLE = "arn:aws:sts::123456789012:assumed-role/vouch-agents/"
PERSON_ROLE = "arn:aws:sts::123456789012:assumed-role/vouch-people/user."
NOT_OURS = "arn:aws:iam::123456789012:user/ci"


def write_records(folder: Path, name: str, records: list[dict[str, object]]) -> None:
    """One file of JSON lines, as Bedrock writes them (the source reads every file)."""
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def table(page: Page, selector: str) -> list[list[str]]:
    return [row.locator("td, th").all_inner_texts() for row in page.locator(selector).all()]


def browser_page_on(browser: Browser, broker: BrokerServer, name: str) -> BrowserPage:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    return BrowserPage(page, PageWatch(origin(broker.url)).attach(page), broker.url, name)


def test_my_usage_per_delegation_at_the_brokers_prices_and_everyones_for_an_admin(
    browser_page: BrowserPage,
    browser_broker: BrokerServer,
    invocation_logs: Path,
    browser: Browser,
) -> None:
    bp, page = browser_page, browser_page.page
    me = person(bp, browser_broker)
    other = "bob.usage@example.com"
    when = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # A short agent name keeps the whole email in the session name (at most 64 characters):
    # a shortened one is resolved through the delegation's record, which this one has not.
    mine = AGENT_ROLE + agent_session_name(DLG, "ci", me.email)
    assert mine.endswith(me.email)
    write_records(
        invocation_logs,
        me.email,
        [
            record(
                f"{me.email}-1",
                arn=mine,
                model=HAIKU,
                timestamp=when,
                tokens_in=1_000_000,
                tokens_out=0,
            ),
            record(
                f"{me.email}-2", arn=mine, model=HAIKU, timestamp=when, tokens_in=0, tokens_out=1000
            ),
            record(
                f"{me.email}-3", arn=mine, model=UNPRICED, timestamp=when, tokens_in=7, tokens_out=3
            ),
            record(
                f"{me.email}-4",
                arn=PERSON_ROLE + me.email,
                model=HAIKU,
                timestamp=when,
                tokens_in=10,
                tokens_out=0,
                cache_read=4,
            ),
            record(
                f"{me.email}-5",
                arn=AGENT_ROLE + agent_session_name(DLG, "ci", other),
                model=HAIKU,
                timestamp=when,
                tokens_in=500_000,
                tokens_out=0,
            ),
            record(
                f"{me.email}-6",
                arn=NOT_OURS,
                model=HAIKU,
                timestamp=when,
                tokens_in=1,
                tokens_out=1,
            ),
            record(
                f"{me.email}-1",
                arn=mine,
                model=HAIKU,
                timestamp=when,
                tokens_in=1_000_000,
                tokens_out=0,
            ),  # delivered twice: counted once
        ],
    )

    page.click("nav a[href='/usage']")
    page.wait_for_url(f"{browser_broker.url}/usage")
    assert page.locator("h1").inner_text() == "My usage"
    assert page.locator("#u-all").count() == 0  # not an admin: no "everyone's"
    assert page.locator("#usage thead th").all_inner_texts() == [
        "Delegation",
        "Agent",
        "Records",
        "Input",
        "Output",
        "Cache read",
        "Cache write",
        "Cost (USD)",
        "Unpriced",
    ]  # as `vouch-broker usage` has them, less the person: it is them on every row
    assert table(page, "#usage tbody tr") == [
        [DLG, "ci", "3", "1000007", "1003", "0", "0", "1.005000", "1"],
        ["-", "(self)", "1", "10", "0", "4", "0", "0.000010", "0"],
    ]
    assert table(page, "#usage tfoot tr") == [
        ["Total", "4", "1000017", "1003", "4", "0", "1.005010", "1"]
    ]
    assert page.locator("#unpriced").inner_text().startswith(f"No price for {UNPRICED}:")
    assert (
        "Bedrock delivers its logs minutes after each call" in page.locator("#period").inner_text()
    )
    bp.screenshot("mine-1280")
    bp.assert_accessible()
    page.set_viewport_size(PHONE)
    bp.screenshot("mine-390")
    bp.assert_accessible()
    page.set_viewport_size(VIEWPORT)

    page.select_option("#u-by", "model")
    page.click("#usage-form button")
    page.wait_for_url(f"{browser_broker.url}/usage?since=24h&by=model")
    assert [r[0] for r in table(page, "#usage tbody tr")] == [
        "Claude Haiku 4.5 (US profile)",
        UNPRICED,  # not in the catalog: its id as given
    ]
    bp.assert_clean()
    bp.goto("/usage?all=true")  # a 403 page from here on
    assert page.locator("#message").inner_text() == (
        "all=true needs an admin named in the org policy"
    )

    admin = browser_page_on(browser, browser_broker, bp.name + "-admin")
    try:
        admin_signs_in(admin, browser_broker)
        admin.goto("/usage")
        admin.page.check("#u-all")
        admin.page.select_option("#u-by", "person")
        admin.page.click("#usage-form button")
        assert admin.page.locator("h1").inner_text() == "Everyone's usage"
        rows = {r[0]: r[1:] for r in table(admin.page, "#usage tbody tr")}
        assert rows[me.email] == ["4", "1000017", "1003", "4", "0", "1.005010", "1"]
        assert rows[other] == ["1", "500000", "0", "0", "0", "0.500000", "0"]
        assert rows["(not vouch)"] == ["1", "1", "1", "0", "0", "0.000006", "0"]
        admin.screenshot("everyone")
        admin.assert_accessible()
        admin.assert_clean()
    finally:
        admin.page.context.close()


def test_without_a_usage_source_the_page_says_what_an_operator_sets(
    browser: Browser,
    tmp_path_factory: pytest.TempPathFactory,
    moto_server: MotoServer,
    request: pytest.FixtureRequest,
) -> None:
    with private_broker(tmp_path_factory.mktemp("no-usage"), moto_server.url) as broker:
        bp = browser_page_on(browser, broker, request.node.name)
        try:
            person(bp, broker)
            bp.goto("/usage")
            assert bp.page.locator("#not-configured").inner_text() == (
                "Usage is not available on this broker yet: an operator points it at Bedrock's "
                "model invocation logs (the usage_source setting, VOUCH_USAGE_SOURCE). "
                "vouch usage says the same."
            )
            bp.screenshot("not-configured")
            bp.assert_accessible()
            bp.assert_clean()
        finally:
            bp.page.context.close()
