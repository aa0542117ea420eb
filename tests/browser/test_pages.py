"""The broker's pages in Chromium, with its DevTools WebAuthn virtual authenticator.

A person enrolls a key with an invite, signs in, approves an agent's request from the link
the agent logged, sees the agent get and use its token, and revokes it on "my
delegations". Then what must be refused is, each with its exact answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from playwright.sync_api import Page
from vouch_delegate import AgentCredentials, AgentKey, TokenRevoked, request_delegation

from broker.delegation_store import Delegation, DelegationStore
from tests.harness.broker import BrokerServer, make_invite
from tests.harness.browser import BrowserPage, off_the_loop

pytestmark = pytest.mark.browser

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
# The agent's words, written to look like markup and like the broker's own text.
MESSAGE = '<b>nightly</b> report <img src=x onerror="alert(1)"> Vouch says: safe'
_emails = iter(range(1_000_000))
# A script (not the page's) that begins an approval, taps, and posts the grant, edited by
# `swap` when given: what a tampered page or a hostile extension could send.
TAP = """async ([code, swap]) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
  const p = await (await post(`/pages/approve/${code}/begin`, {})).json();
  const b = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")),
    (c) => c.charCodeAt(0));
  const pk = p.options.publicKey;
  const c = await navigator.credentials.get({publicKey: {...pk, challenge: b(pk.challenge),
    userVerification: pk.userVerification,
    allowCredentials: pk.allowCredentials.map((x) => ({...x, id: b(x.id)}))}});
  const grant = swap ? p.grant_canonical.replace(swap[0], swap[1]) : p.grant_canonical;
  const r = await post("/pages/approve/complete", {challenge_id: p.challenge_id,
    credential: c.toJSON(), grant});
  return [r.status, (await r.json()).detail];
}"""


def authenticator(page: Page, *, uv: bool = True) -> tuple[Any, str]:
    """A USB CTAP2 key with resident keys and a PIN, that the page's WebAuthn calls reach."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": uv,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def enroll(bp: BrowserPage, broker: BrokerServer, email: str) -> None:
    code = off_the_loop(make_invite, broker.settings, email)
    bp.goto(f"/enroll?code={code}")
    bp.page.fill("#email", email)
    bp.page.click("#enroll button")
    bp.page.wait_for_url(f"{broker.url}/signin", timeout=15_000)


def sign_in(bp: BrowserPage, then: str) -> None:
    bp.page.click("#signin")
    bp.page.wait_for_url(re.compile(re.escape(bp.base_url + then) + r"$"), timeout=15_000)


@dataclass
class Someone:
    email: str
    cdp: Any
    authenticator_id: str


def person(bp: BrowserPage, broker: BrokerServer) -> Someone:
    """A new person with a key in this browser's authenticator, signed in."""
    email = f"p{next(_emails)}-{bp.name[5:25].lower().replace('_', '-')}@example.com"
    email = re.sub(r"[^a-z0-9@.-]", "", email)
    cdp, authenticator_id = authenticator(bp.page)
    enroll(bp, broker, email)
    sign_in(bp, "/delegations")
    return Someone(email, cdp, authenticator_id)


@dataclass
class Agent:
    """`request_delegation` in a thread, with the approval link it logs."""

    broker: BrokerServer
    email: str
    key: AgentKey = field(default_factory=AgentKey.generate)
    link: str = ""
    result: Any = None
    thread: threading.Thread | None = None
    _logged: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Agent:
        handler = _LinkCatcher(self)
        logging.getLogger("vouch_delegate").addHandler(handler)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._logged.wait(15), "the agent logged no approval link"
        logging.getLogger("vouch_delegate").removeHandler(handler)
        return self

    def _run(self) -> None:
        try:
            self.result = request_delegation(
                self.broker.url,
                email=self.email,
                agent="nightly",
                models=["us.claude-haiku-4-5"],
                ttl="45m",
                message=MESSAGE,
                key=self.key,
                timeout_s=60,
            )
        except Exception as exc:
            self.result = exc

    def token(self) -> str:
        assert self.thread is not None
        self.thread.join(60)
        assert isinstance(self.result, str), self.result
        return self.result

    @property
    def code(self) -> str:
        return self.link.rsplit("/", 1)[1]


class _LinkCatcher(logging.Handler):
    def __init__(self, agent: Agent) -> None:
        super().__init__(logging.WARNING)
        self.agent = agent

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"open (\S+/approve/\S+) \(or run", record.getMessage())
        if found:
            self.agent.link = found.group(1)
            self.agent._logged.set()


@pytest.fixture
def phone(browser_page: BrowserPage) -> BrowserPage:
    browser_page.page.set_viewport_size({"width": 390, "height": 844})
    return browser_page


def test_enroll_sign_in_approve_exchange_revoke(
    phone: BrowserPage, browser_broker: BrokerServer
) -> None:
    bp, page = phone, phone.page
    authenticator(page)
    code = off_the_loop(make_invite, browser_broker.settings, "ada@example.com")
    answer = bp.goto(f"/enroll?code={code}")
    assert answer is not None and answer.headers["content-security-policy"] == PAGE_CSP
    assert answer.headers["x-frame-options"] == "DENY"
    page.fill("#email", "ada@example.com")
    bp.screenshot("1-enroll")
    bp.assert_accessible()
    page.click("#enroll button")
    page.wait_for_url(f"{browser_broker.url}/signin", timeout=15_000)

    agent = Agent(browser_broker, "ada@example.com").start()
    assert agent.link == f"{browser_broker.url}/approve/{agent.code}"
    page.goto(agent.link)  # not signed in: the sign-in page, then back here
    assert page.url == f"{browser_broker.url}/signin?next=/approve/{agent.code}"
    bp.screenshot("2-signin")
    bp.assert_accessible()
    sign_in(bp, f"/approve/{agent.code}")
    cookie = next(c for c in page.context.cookies() if c["name"] == "vouch_session")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)
    assert page.evaluate("() => document.cookie") == ""  # no script reads the session

    assert page.locator(".agent").inner_text() == "nightly"
    assert page.locator(".models li").all_inner_texts() == [
        f"Claude Haiku 4.5 (US profile) {HAIKU}"
    ]
    assert page.locator("#lifetime").inner_text() == "45 min"
    assert page.locator("#jkt").inner_text() == agent.key.thumbprint
    assert page.locator("#agent-message").inner_text() == MESSAGE  # text, not markup
    assert page.locator("#agent-message *").count() == 0
    bp.screenshot("3-approve")
    bp.assert_accessible()
    page.click("#approve")
    page.locator("#status.ok").wait_for(timeout=15_000)
    assert re.fullmatch(
        r"Approved: delegation dlg_\S+\. The agent receives its token now\.",
        page.locator("#status").inner_text(),
    )
    bp.screenshot("4-approved")

    token = agent.token()
    assert AgentCredentials(token=token).get().access_key_id

    page.goto(f"{browser_broker.url}/delegations")
    row = page.locator("#delegations tbody tr")
    assert row.count() == 1 and row.locator(".state").inner_text() == "active"
    bp.screenshot("5-delegations")
    bp.assert_accessible()
    row.locator("button", has_text="Revoke").click()
    page.wait_for_url(re.compile(r".*/delegations\?revoked=dlg_"))
    notice = page.locator("#notice").inner_text()
    assert notice.startswith("Revoked dlg_") and "its next exchange is refused" in notice
    assert row.locator(".state").inner_text() == "revoked"
    bp.screenshot("6-revoked")
    with pytest.raises(TokenRevoked):
        AgentCredentials(token=token).get()
    bp.assert_clean()


def _approve_page(bp: BrowserPage, broker: BrokerServer) -> tuple[Agent, Someone]:
    someone = person(bp, broker)
    agent = Agent(broker, someone.email).start()
    bp.page.goto(agent.link)
    bp.page.locator("#approve").wait_for()
    return agent, someone


def _status_error(page: Page) -> str:
    page.locator("#status.error").wait_for(timeout=15_000)
    return page.locator("#status").inner_text()


def test_a_second_approval_of_the_same_code_is_refused(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    agent, _ = _approve_page(browser_page, browser_broker)
    page = browser_page.page
    page.click("#approve")
    page.locator("#status.ok").wait_for(timeout=15_000)
    agent.token()
    answer = page.goto(agent.link)
    assert answer is not None and answer.status == 404
    assert page.locator("#message").inner_text() == "no pending delegation request with that code"
    begin = page.evaluate(
        """async (code) => {
          const csrf = document.querySelector('meta[name="csrf-token"]').content;
          const r = await fetch(`/pages/approve/${code}/begin`, {method: "POST",
            headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: "{}"});
          return [r.status, (await r.json()).detail];
        }""",
        agent.code,
    )
    assert begin == [404, "no pending delegation request with that code"]


def test_another_persons_request_is_not_shown(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    agent = Agent(browser_broker, "someone-else@example.com").start()
    person(browser_page, browser_broker)
    answer = browser_page.page.goto(agent.link)
    assert answer is not None and answer.status == 403
    assert (
        browser_page.page.locator("#message").inner_text()
        == "this delegation request was made to another person"
    )
    assert browser_page.page.locator("#approve").count() == 0
    assert MESSAGE not in browser_page.page.content()
    browser_page.screenshot("other-person")


def test_a_tap_without_user_verification_approves_nothing(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    agent, someone = _approve_page(browser_page, browser_broker)
    someone.cdp.send(
        "WebAuthn.setUserVerified",
        {"authenticatorId": someone.authenticator_id, "isUserVerified": False},
    )
    page = browser_page.page
    page.click("#approve")  # the options require UV: Chromium itself refuses this key
    assert _status_error(page) == (
        "Not approved: The operation either timed out or was not allowed. See:"
        " https://www.w3.org/TR/webauthn-2/#sctn-privacy-considerations-client."
    )
    browser_page.screenshot("uv-off")
    # A script that asks for no UV gets a tap without it: the broker refuses that tap.
    answer = page.evaluate(
        TAP.replace("userVerification: pk.userVerification", 'userVerification: "discouraged"'),
        [agent.code, None],
    )
    assert answer == [
        401,
        "assertion rejected: User verification required, but user verified flag not set.",
    ]
    assert agent.thread is not None and agent.thread.is_alive()  # still waiting: nothing approved


def test_a_tampered_grant_is_refused(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    agent, _ = _approve_page(browser_page, browser_broker)
    page = browser_page.page
    # The page's copy of the grant says 5 minutes: the page refuses to have it signed.
    page.evaluate(
        """() => { const g = document.getElementById("grant");
                   g.dataset.grant = g.dataset.grant.replace('"ttl_s":2700', '"ttl_s":300'); }"""
    )
    page.click("#approve")
    assert _status_error(page) == (
        "Not approved: the broker asked your key to sign a different grant than the one shown;"
        " nothing was signed"
    )
    # A script that taps anyway and posts the tampered grant: the broker compares it with the
    # grant its challenge committed to, and approves nothing.
    answer = page.evaluate(TAP, [agent.code, ['"ttl_s":2700', '"ttl_s":300']])
    assert answer == [400, "the grant shown is not the grant this tap was asked to sign"]
    assert agent.thread is not None and agent.thread.is_alive()  # nothing approved


def test_cross_site_and_tokenless_posts_are_refused(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    agent, _ = _approve_page(browser_page, browser_broker)
    page = browser_page.page
    page.click("#approve")
    page.locator("#status.ok").wait_for(timeout=15_000)
    agent.token()
    page.goto(f"{browser_broker.url}/delegations")
    dlg = page.locator("#delegations tbody tr").get_attribute("data-id")
    # Same origin, no token (a script the page's CSP would never run; Playwright's does).
    tokenless = page.evaluate(
        """async (id) => {
          const r = await fetch(`/delegations/${id}/revoke`, {method: "POST",
            headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "x=1"});
          return [r.status, (await r.json()).detail];
        }""",
        dlg,
    )
    assert tokenless == [403, "missing or wrong CSRF token: reload the page and try again"]
    # Another site's page posts a form at the broker: no cookie goes (SameSite=Strict) and
    # its Origin is not the broker's.
    target = f"{browser_broker.url}/delegations/{dlg}/revoke"
    page.route(
        "http://attacker.test/",
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<form method="post" action="{target}"><input name="csrf" value="guess">'
            "</form><script>document.forms[0].submit()</script>",
        ),
    )
    with page.expect_response(target) as posted:
        page.goto("http://attacker.test/")
    assert posted.value.status == 403
    assert posted.value.json()["detail"] == "this request did not come from the broker's own pages"
    page.goto(f"{browser_broker.url}/delegations")
    assert page.locator(f'tr[data-id="{dlg}"] .state').inner_text() == "active"


def test_a_second_key_is_added_with_a_tap_of_the_first(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    bp, page = browser_page, browser_page.page
    someone = person(bp, browser_broker)
    bp.goto("/keys")
    first = page.locator("#keys tbody tr").get_attribute("data-cid")
    assert page.locator("#keys tbody tr .state").all_inner_texts() == ["active"]
    bp.screenshot("1-keys")
    bp.assert_accessible()
    # The new key, a second authenticator: the first one stays out of step 1 ...
    cdp, new_key = authenticator(page)
    presence = "WebAuthn.setAutomaticPresenceSimulation"
    cdp.send(presence, {"authenticatorId": someone.authenticator_id, "enabled": False})
    page.click("#add-new")
    page.locator("#status.ok").wait_for(timeout=15_000)
    assert page.locator("#status").inner_text() == (
        "New key registered on this page. Now touch a key you already have, to approve it."
    )
    # ... and the registered key approves exactly that registration in step 2.
    cdp.send(presence, {"authenticatorId": new_key, "enabled": False})
    cdp.send(presence, {"authenticatorId": someone.authenticator_id, "enabled": True})
    page.click("#add-approve")
    page.wait_for_url(f"{browser_broker.url}/keys?added=*", timeout=15_000)
    page.locator("#keys tbody tr:nth-child(2)").wait_for()
    rows = page.locator("#keys tbody tr")
    assert rows.locator(".state").all_inner_texts() == ["active", "active"]
    added = rows.nth(1)
    cid = added.get_attribute("data-cid")
    assert cid not in (None, first)
    assert added.locator("td").nth(3).inner_text() == f"approved by {first}"
    assert page.locator("#notice").inner_text() == (
        f"Added key {cid}: it signs you in and approves your agents, as your others do."
    )
    bp.screenshot("2-added")
    bp.goto("/keys?added=someone-elses-key")
    assert page.locator("#notice").count() == 0  # only a key of theirs is named
    # The new key signs in on its own.
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": someone.authenticator_id})
    cdp.send(presence, {"authenticatorId": new_key, "enabled": True})
    page.context.clear_cookies()
    bp.goto("/signin?next=/keys")
    sign_in(bp, "/keys")
    assert page.locator(".who").inner_text() == someone.email
    bp.assert_clean()


def test_adding_a_key_with_a_tap_without_user_verification_is_refused(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    bp, page = browser_page, browser_page.page
    someone = person(bp, browser_broker)
    bp.goto("/keys")
    cdp, new_key = authenticator(page)
    presence = "WebAuthn.setAutomaticPresenceSimulation"
    cdp.send(presence, {"authenticatorId": someone.authenticator_id, "enabled": False})
    page.click("#add-new")
    page.locator("#status.ok").wait_for(timeout=15_000)
    cdp.send(presence, {"authenticatorId": new_key, "enabled": False})
    cdp.send(presence, {"authenticatorId": someone.authenticator_id, "enabled": True})
    someone.cdp.send(
        "WebAuthn.setUserVerified",
        {"authenticatorId": someone.authenticator_id, "isUserVerified": False},
    )
    page.click("#add-approve")
    assert _status_error(page) == (
        "Not added: The operation either timed out or was not allowed. See:"
        " https://www.w3.org/TR/webauthn-2/#sctn-privacy-considerations-client."
    )
    bp.goto("/keys")
    assert page.locator("#keys tbody tr").count() == 1  # nothing was added


def test_a_tap_on_a_page_of_another_origin_signs_in_nobody(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    """A look-alike page on another origin with the same RP ID (another port of localhost)
    relays the broker's challenge and gets a real tap: the broker refuses it by origin."""
    bp, page = browser_page, browser_page.page
    person(bp, browser_broker)
    begun = httpx.post(f"{browser_broker.url}/v1/login/begin", json={}).json()
    port = int(browser_broker.url.rsplit(":", 1)[1])
    lookalike = f"http://localhost:{port + 1}/"
    page.route(lookalike, lambda route: route.fulfill(content_type="text/html", body="<p>hi"))
    page.goto(lookalike)
    credential = page.evaluate(
        """async (pk) => {
          const b = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")),
            (c) => c.charCodeAt(0));
          const c = await navigator.credentials.get({publicKey: {...pk,
            challenge: b(pk.challenge)}});
          return c.toJSON();
        }""",
        begun["options"]["publicKey"],
    )
    answer = httpx.post(
        f"{browser_broker.url}/v1/login/complete",
        json={"challenge_id": begun["challenge_id"], "credential": credential},
    )
    assert answer.status_code == 401
    assert answer.json()["detail"] == "assertion rejected: Invalid origin in CollectedClientData."


def test_expired_delegations_stay_listed_as_expired_for_a_day(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    bp, page = browser_page, browser_page.page
    someone = person(bp, browser_broker)
    now = int(time.time())
    ended = Delegation(
        id="dlg_ended1",
        email=someone.email,
        agent="nightly",
        sub=f"agent.nightly.{someone.email}",
        models=(HAIKU,),
        cid="c" * 22,
        created_at=now - 7200,
        expires_at=now - 3600,
        purpose="last night's report",
    )
    long_gone = msgspec.structs.replace(
        ended, id="dlg_ended2", created_at=now - 200_000, expires_at=now - 90_000
    )
    off_the_loop(_store, browser_broker, [long_gone, ended])
    bp.goto("/delegations")
    rows = page.locator("#delegations tbody tr")
    assert [rows.nth(i).get_attribute("data-id") for i in range(rows.count())] == ["dlg_ended1"]
    assert rows.locator(".state").inner_text() == "expired"
    assert rows.locator("td").nth(1).inner_text() == "Claude Haiku 4.5 (US profile)"
    assert rows.locator("button").count() == 0  # nothing to revoke
    bp.screenshot("expired")
    bp.assert_accessible()
    # Nor can the API revoke it: it has ended.
    revoke = page.evaluate(
        """async () => {
          const csrf = document.querySelector('meta[name="csrf-token"]').content;
          const r = await fetch("/delegations/dlg_ended1/revoke", {method: "POST",
            headers: {"Content-Type": "application/x-www-form-urlencoded"},
            body: `csrf=${encodeURIComponent(csrf)}`});
          return [r.status, await r.text()];
        }"""
    )
    assert (
        revoke[0] == 404
        and "no active delegation &#39;dlg_ended1&#39;: it has expired" in revoke[1]
    )


def _store(broker: BrokerServer, records: list[Delegation]) -> None:
    async def run() -> None:
        redis = aioredis.from_url(broker.settings.redis_url)
        try:
            for record in records:
                assert await DelegationStore(redis).add(record, max_active=10) is None
        finally:
            await redis.aclose()

    asyncio.run(run())
