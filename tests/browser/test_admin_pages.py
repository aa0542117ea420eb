"""The admin pages in Chromium, with its DevTools WebAuthn virtual authenticator.

An admin (named in the browser broker's org policy: the example policy's
admin@example.com) signs in, invites someone with a tap and sees the code work, cancels an
invite, revokes a person and sees their session and delegation refused, reinstates them with
a tap, revokes a key, and reads the audit trail filtered and paged. Then what must be
refused is, each with its exact answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, ViewportSize
from vouch_delegate import AgentCredentials, TokenRevoked

from broker.invites import Invite, Invites, invite_id
from broker.registry import Registry
from broker.store import connect
from tests.browser.conftest import VIEWPORT
from tests.browser.test_pages import PAGE_CSP, Someone, authenticator, enroll, person, sign_in
from tests.harness.broker import BrokerServer, make_invite
from tests.harness.browser import BrowserPage, PageWatch, off_the_loop, origin
from tests.harness.people import Human, person_at

pytestmark = pytest.mark.browser

ADMIN = "admin@example.com"  # policies/examples/org.toml, the browser broker's policy
HAIKU = "us.claude-haiku-4-5"
NOT_ADMIN = "this needs an admin named in the org policy"
NO_CSRF = "missing or wrong CSRF token: reload the page and try again"
# A reason written to look like markup: the audit page must show it as text.
REASON = '<b>leaked</b> key <img src=x onerror="alert(1)">'
PHONE: ViewportSize = {"width": 390, "height": 844}
UV_REFUSED = (
    "Not reinstated: The operation either timed out or was not allowed. See:"
    " https://www.w3.org/TR/webauthn-2/#sctn-privacy-considerations-client."
)
_victims = iter(range(1_000_000))
# A script (not the page's) that begins a reinstatement, taps (with the user verification
# `uv` asks for) and posts `shown` as the action it showed: what a tampered page could send.
TAP = """async ([email, uv, shown]) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
  const p = await (await post("/pages/admin/reinstate/begin", {email})).json();
  const b = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")),
    (c) => c.charCodeAt(0));
  const pk = p.options.publicKey;
  const c = await navigator.credentials.get({publicKey: {...pk, challenge: b(pk.challenge),
    userVerification: uv,
    allowCredentials: pk.allowCredentials.map((x) => ({...x, id: b(x.id)}))}});
  const r = await post("/pages/admin/reinstate/complete", {challenge_id: p.challenge_id,
    credential: c.toJSON(), action: shown ?? p.action_canonical});
  return [r.status, (await r.json()).detail];
}"""
# A same-origin POST from the page, with or without the page's CSRF token.
FETCH = """async ([path, body, json, withToken]) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const headers = {"Content-Type": json ? "application/json" : "application/x-www-form-urlencoded"};
  if (json && withToken) headers["X-CSRF-Token"] = csrf;
  const form = new URLSearchParams(body);
  if (!json && withToken) form.set("csrf", csrf);
  const r = await fetch(path, {method: "POST", headers, body: json ? JSON.stringify(body) : form});
  const text = await r.text();
  let detail = null;
  try { detail = JSON.parse(text).detail; } catch { detail = text; }
  return [r.status, detail];
}"""


def admin_signs_in(bp: BrowserPage, broker: BrokerServer) -> Someone:
    """The org policy's admin, with a new key in this browser's authenticator, signed in."""
    cdp, authenticator_id = authenticator(bp.page)
    enroll(bp, broker, ADMIN)
    sign_in(bp, "/delegations")
    return Someone(ADMIN, cdp, authenticator_id)


def victim(broker: BrokerServer, tmp_path: Path, label: str) -> Human:
    """A person with a software key, signed in through the API, with a live delegation."""
    email = f"v{next(_victims)}-{label}@example.com"
    human = person_at(broker, email, tmp_path / f"{email}.key.json")
    human.enroll(off_the_loop(make_invite, broker.settings, email))
    human.login()
    return human


def status_ok(page: Page) -> str:
    page.locator("#status.ok").wait_for(timeout=15_000)
    return page.locator("#status").inner_text()


def status_error(page: Page) -> str:
    page.locator("#status.error").wait_for(timeout=15_000)
    return page.locator("#status").inner_text()


def person_href(email: str) -> str:
    return "/admin/people/" + quote(email, safe="@")


def screenshots(bp: BrowserPage, label: str) -> None:
    """The page at a laptop's size and at a phone's, whole; axe-core finds nothing at either."""
    bp.screenshot(f"{label}-1280")
    bp.assert_accessible()
    bp.page.set_viewport_size(PHONE)
    bp.screenshot(f"{label}-390")
    bp.assert_accessible()
    bp.page.set_viewport_size(VIEWPORT)


def invite_with_a_tap(page: Page, email: str) -> tuple[str, str]:
    """The invite form, the tap: the code and the link the page shows (once)."""
    page.fill("#invite-email", email)
    page.click("#invite button")
    assert status_ok(page) == (
        f"Invited {email}. Copy the code or the link now: it is not shown again."
    )
    return page.input_value("#invite-code"), page.input_value("#invite-link")


def test_admin_invites_revokes_reinstates_and_reads_the_audit(
    browser_page: BrowserPage, browser_broker: BrokerServer, browser: Browser, tmp_path: Path
) -> None:
    bp, page, url = browser_page, browser_page.page, browser_broker.url
    admin_signs_in(bp, browser_broker)
    page.click("nav >> text=Admin")
    page.wait_for_url(f"{url}/admin/people")
    admin_row = page.locator(f'#people tr[data-email="{ADMIN}"]')
    assert admin_row.locator(".state").inner_text() == "active"
    assert re.fullmatch(r"\d+ active", admin_row.locator(".keys").inner_text())

    # An invite, with a tap: the code and link shown once, and they enroll in another browser.
    newcomer = f"newcomer-{next(_victims)}@example.com"
    answer = page.goto(f"{url}/admin/invites")
    assert answer is not None and answer.headers["content-security-policy"] == PAGE_CSP
    code, link = invite_with_a_tap(page, newcomer)
    assert link == f"{url}/enroll?code={code}"
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){4}", code)
    assert page.locator("#invited-email").inner_text() == newcomer
    screenshots(bp, "invites-created")
    page.reload()
    assert code not in page.content()  # shown once: the page keeps nothing of it
    assert page.locator(f'#invites tr:has-text("{newcomer}")').count() == 1
    screenshots(bp, "invites")

    other = browser.new_context(viewport=VIEWPORT)
    try:
        other_page = other.new_page()
        watch = PageWatch(origin(url)).attach(other_page)
        newcomer_bp = BrowserPage(other_page, watch, url, bp.name + "-newcomer")
        authenticator(other_page)
        other_page.goto(link)
        other_page.fill("#email", newcomer)
        other_page.click("#enroll button")
        other_page.wait_for_url(f"{url}/signin", timeout=15_000)
        sign_in(newcomer_bp, "/delegations")
        newcomer_bp.assert_clean()

        # Cancel another invite: its row goes, and its code no longer enrolls anyone.
        spare = f"spare-{next(_victims)}@example.com"
        spare_code = off_the_loop(make_invite, browser_broker.settings, spare)
        page.goto(f"{url}/admin/invites")
        row = page.locator(f'#invites tr:has-text("{spare}")')
        invite_id = row.get_attribute("data-id")
        row.locator("button", has_text="Cancel").click()
        page.wait_for_url(re.compile(r".*/admin/invites\?cancelled=inv_"))
        assert page.locator("#notice").inner_text() == (
            f"Cancelled invite {invite_id}: its code no longer enrolls anyone."
        )
        assert page.locator(f'#invites tr:has-text("{spare}")').count() == 0
        begun = person_at(browser_broker, spare, tmp_path / "spare.json").begin_enrollment(
            spare_code
        )
        assert (begun.status_code, begun.json()["detail"]) == (
            401,
            "invite code is unknown, used, expired or for another email",
        )

        # Revoke a person: their state changes, their session and their agent's token die.
        alice = victim(browser_broker, tmp_path, "revoked")
        token = alice.delegate("nightly", [HAIKU], ttl_s=3600).token
        page.goto(f"{url}/admin/people")
        page.click(f'#people a:text-is("{alice.email}")')
        page.wait_for_url(f"{url}{person_href(alice.email)}")
        assert page.locator("#person-state .badge").inner_text() == "active"
        assert page.locator("#delegations .state").inner_text() == "active"
        models = page.locator('#delegations td[data-label="Models"]').inner_text()
        assert models == "Claude Haiku 4.5 (US profile)"
        screenshots(bp, "person-active")
        page.fill("#reason", REASON)
        page.click("#revoke-person button")
        page.wait_for_url(re.compile(re.escape(url + person_href(alice.email)) + r"\?done=revoked"))
        assert (
            page.locator("#notice")
            .inner_text()
            .startswith(f"Revoked {alice.email}: their sessions, keys and agent tokens are refused")
        )
        assert page.locator("#person-state .badge").inner_text() == "revoked"
        assert page.locator("#keys .state").all_inner_texts() == ["revoked"]
        assert page.locator("#delegations .state").inner_text() == "revoked (user)"
        screenshots(bp, "person-revoked")
        session = alice.http.get("/v1/keys", headers={"Authorization": f"Bearer {alice.session}"})
        assert (session.status_code, session.json()["type"]) == (
            401,
            "urn:vouch:problem:token-revoked",
        )
        with pytest.raises(TokenRevoked):
            AgentCredentials(token=token).get()
        page.goto(f"{url}/admin/people")
        revoked_row = page.locator(f'#people tr[data-email="{alice.email}"]')
        assert revoked_row.locator(".state").inner_text() == "revoked"
        assert revoked_row.locator(".keys").inner_text() == "1 revoked"
        screenshots(bp, "people")

        # Reinstate with a tap over the action the page shows.
        page.goto(f"{url}{person_href(alice.email)}")
        assert page.locator("#reinstate-action").inner_text() == (
            f'{{"action":"reinstate","by":"{ADMIN}","email":"{alice.email}"}}'
        )
        page.click("#reinstate-button")
        page.wait_for_url(re.compile(r".*\?done=reinstated$"), timeout=15_000)
        assert page.locator("#notice").inner_text() == (
            f"Reinstated {alice.email}: they may enroll a new key with a new invite"
            " (their old keys stay revoked)."
        )
        assert page.locator("#person-state .badge").inner_text() == "active"
        assert page.locator("#keys .state").all_inner_texts() == ["revoked"]
        assert page.locator("#revoke-person").count() == 1

        # Revoke the newcomer's key: their browser session ends with it.
        page.goto(f"{url}{person_href(newcomer)}")
        [cid] = page.locator("#keys tbody tr").evaluate_all("rows => rows.map(r => r.dataset.cid)")
        page.click(f'#keys tr[data-cid="{cid}"] button')
        page.wait_for_url(re.compile(r".*\?done=key&aws=\w+$"))
        assert (
            page.locator("#notice")
            .inner_text()
            .startswith(
                "Revoked the key: its sessions and the agent tokens it approved are refused."
            )
        )
        assert page.locator("#keys .state").all_inner_texts() == ["revoked"]
        assert page.locator("#person-state .badge").inner_text() == "active"  # the person is not
        other_page.goto(f"{url}/delegations")
        assert other_page.url == f"{url}/signin?next=/delegations"
    finally:
        other.close()

    # The audit trail about alice, newest first, two at a time; the reason is text.
    page.goto(f"{url}/admin/audit")
    page.fill("#f-person", alice.email)
    page.click("#filters button")
    page.wait_for_url(re.compile(r".*/admin/audit\?person="))
    names = page.locator("#events .event-name").all_inner_texts()
    assert names == [
        "reinstated",
        "exchange_refused",  # the agent's token, after the revocation
        "revoked",
        "delegated",
        "login",
        "enrolled",
    ]
    revoked = page.locator("#events li").nth(2)
    fields = dict(
        zip(
            revoked.locator("dt").all_inner_texts(),
            revoked.locator("dd").all_inner_texts(),
            strict=True,
        )
    )
    assert (fields["actor"], fields["subject"], fields["reason"]) == (ADMIN, alice.email, REASON)
    assert page.locator("#events dd *").count() == 0  # no element made from a field
    screenshots(bp, "audit")
    page.goto(f"{url}/admin/audit?person={quote(alice.email)}&limit=2")
    first = page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.id)")
    assert page.locator("#events .event-name").all_inner_texts() == names[:2]
    page.click("#older")
    page.wait_for_url(re.compile(r".*before=\d+-\d+"))
    second = page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.id)")
    assert len(second) == 2 and not set(first) & set(second)
    assert page.locator("#events .event-name").all_inner_texts() == names[2:4]
    page.goto(f"{url}/admin/audit?person={quote(alice.email)}&limit=4")
    all_four = page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.id)")
    assert all_four == first + second  # the pages follow on without a gap or a repeat
    bp.assert_clean()


def test_a_signed_out_browser_is_sent_to_sign_in(browser_page: BrowserPage) -> None:
    page, url = browser_page.page, browser_page.base_url
    long_email = "a-rather-long-mailbox-name-for-a-service-account@" + "sub." * 8 + "example.com"
    paths = ("/admin/people", "/admin/invites", "/admin/audit", person_href(ADMIN))
    for path in (*paths, person_href(long_email)):
        answer = browser_page.goto(path)
        assert answer is not None and answer.status == 200  # the sign-in page itself
        assert page.url == f"{url}/signin?next={path}"


def test_a_non_admin_gets_403_on_every_admin_page_and_post(
    browser_page: BrowserPage, browser_broker: BrokerServer
) -> None:
    bp, page = browser_page, browser_page.page
    someone = person(bp, browser_broker)
    assert page.locator("nav a", has_text="Admin").count() == 0
    # Real targets, so that only the admin check can refuse: an unused invite, their own key.
    spare = f"spare-{next(_victims)}@example.com"
    spare_id = invite_id(off_the_loop(make_invite, browser_broker.settings, spare))
    [own_key] = off_the_loop(credentials_of, browser_broker, someone.email)
    for path in ("/admin/people", "/admin/invites", "/admin/audit", person_href(ADMIN)):
        answer = bp.goto(path)
        assert answer is not None and answer.status == 403, path
        assert answer.headers["content-security-policy"] == PAGE_CSP
        assert page.locator("#message").inner_text() == NOT_ADMIN
    bp.screenshot("forbidden")
    ceremony: dict[str, Any] = {"challenge_id": "x" * 16, "credential": {}, "action": "{}"}
    posts: list[tuple[str, dict[str, Any], bool]] = [
        (f"{person_href(ADMIN)}/revoke", {"reason": "no"}, False),
        (f"/admin/keys/{own_key}/revoke", {}, False),
        (f"/admin/invites/{spare_id}/cancel", {}, False),
        ("/pages/admin/invites/begin", {"email": "x@example.com"}, True),
        ("/pages/admin/invites/complete", ceremony, True),
        ("/pages/admin/reinstate/begin", {"email": ADMIN}, True),
        ("/pages/admin/reinstate/complete", ceremony, True),
    ]
    for path, body, json in posts:
        status, detail = page.evaluate(FETCH, [path, body, json, True])
        assert status == 403, (path, detail)
        if json:
            assert detail == NOT_ADMIN, path
        else:
            assert NOT_ADMIN in detail, path  # the message page
    page.goto(f"{browser_broker.url}/delegations")
    status, detail = page.evaluate(FETCH, [person_href(ADMIN) + "/revoke", {}, False, False])
    assert (status, detail) == (403, NO_CSRF)
    # Nothing changed: the invite still enrolls, the key still signs in.
    assert spare_id in [i.id for i in off_the_loop(unused_invites, browser_broker)]
    page.goto(f"{browser_broker.url}/signin")
    sign_in(bp, "/delegations")


def credentials_of(broker: BrokerServer, email: str) -> list[str]:
    """The cids of `email`'s active keys, read from the broker's Redis."""

    async def read() -> list[str]:
        client = connect(broker.settings.redis_url, timeout_s=2.0)
        try:
            keys = await Registry(client).credentials_of(email)
            return [k.cid for k in keys if k.state == "active"]
        finally:
            await client.aclose()

    return asyncio.run(read())


def unused_invites(broker: BrokerServer) -> list[Invite]:
    async def read() -> list[Invite]:
        client = connect(broker.settings.redis_url, timeout_s=2.0)
        try:
            invites = Invites(client, ttl_s=broker.settings.invite_ttl_s)
            return await invites.unused(now=int(time.time()))
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_admin_posts_without_the_csrf_token_are_refused(
    browser_page: BrowserPage, browser_broker: BrokerServer, tmp_path: Path
) -> None:
    page = browser_page.page
    admin_signs_in(browser_page, browser_broker)
    bob = victim(browser_broker, tmp_path, "csrf")
    page.goto(f"{browser_broker.url}{person_href(bob.email)}")
    [cid] = page.locator("#keys tbody tr").evaluate_all("rows => rows.map(r => r.dataset.cid)")
    for path, body, json in [
        (f"{person_href(bob.email)}/revoke", {"reason": "x"}, False),
        (f"/admin/keys/{cid}/revoke", {}, False),
        ("/pages/admin/invites/begin", {"email": "x@example.com"}, True),
        ("/pages/admin/reinstate/begin", {"email": bob.email}, True),
    ]:
        assert page.evaluate(FETCH, [path, body, json, False]) == [403, NO_CSRF], path
    page.reload()
    assert page.locator("#person-state .badge").inner_text() == "active"
    assert page.locator("#keys .state").all_inner_texts() == ["active"]


def test_a_reinstatement_needs_a_user_verified_tap_over_the_action_shown(
    browser_page: BrowserPage, browser_broker: BrokerServer, tmp_path: Path
) -> None:
    page, url = browser_page.page, browser_broker.url
    admin = admin_signs_in(browser_page, browser_broker)
    carol = victim(browser_broker, tmp_path, "uv")
    page.goto(f"{url}{person_href(carol.email)}")
    page.click("#revoke-person button")
    page.wait_for_url(re.compile(r".*\?done=revoked"))

    # The page's copy of the action names someone else: the page refuses to have it signed.
    page.evaluate(
        """(email) => { const s = document.getElementById("reinstate");
                        s.dataset.action = s.dataset.action.replace(email, "x@example.com"); }""",
        carol.email,
    )
    page.click("#reinstate-button")
    assert status_error(page) == (
        "Not reinstated: the broker asked your key to approve a different action than the one"
        " shown; nothing was signed"
    )
    # A script that taps anyway and posts another action: the broker refuses it.
    tampered = page.evaluate(TAP, [carol.email, "required", '{"action":"reinstate"}'])
    assert tampered == [400, "the action shown is not the action this tap was asked to approve"]

    page.reload()
    admin.cdp.send(
        "WebAuthn.setUserVerified",
        {"authenticatorId": admin.authenticator_id, "isUserVerified": False},
    )
    page.click("#reinstate-button")  # the options require UV: Chromium itself refuses this key
    assert status_error(page) == UV_REFUSED
    browser_page.screenshot("reinstate-uv-off")
    # A script that asks for no UV gets a tap without it: the broker refuses that tap.
    answer = page.evaluate(TAP, [carol.email, "discouraged", None])
    assert answer == [
        401,
        "assertion rejected: User verification required, but user verified flag not set.",
    ]
    page.reload()
    assert page.locator("#person-state .badge").inner_text() == "revoked"  # nothing reinstated
