"""Attacks on people, keys and sessions, each refused with its exact problem (docs/design.md
invariants 10 and 11): a bearer session never adds power, and a revoked person stays revoked
until an admin reinstates them."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis
from vouch_delegate import AssertionRejected, KeyFlagged

from tests.harness.broker import BrokerServer, broker_settings, make_invite
from tests.harness.people import Human, person_at
from tests.harness.sts_gate import StsGate
from tests.integration.test_rate_limits import well_inside_a_minute

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
ACTION_DOMAIN = b"vouch-action-v1\x00"


def problem(answer: httpx.Response) -> tuple[int, str]:
    """(status, slug) of a problem answer, after checking it is a problem at all."""
    assert answer.headers["content-type"].startswith("application/problem+json"), (
        answer.status_code,
        answer.text,
    )
    return answer.status_code, str(answer.json()["type"]).removeprefix("urn:vouch:problem:")


def cid_of(session: str | None) -> str:
    return str(jwt.decode(session or "", options={"verify_signature": False})["cid"])


def audited(broker: BrokerServer, event: str) -> list[dict[str, str]]:
    stream = redis.Redis.from_url(broker.settings.redis_url).xrange("vouch:audit")
    rows = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in stream]
    return [row for row in rows if row["event"] == event]


def spare_key(of: Human, path: Path) -> Human:
    """Another software key in the hands of whoever holds `of`'s session."""
    return Human(str(of.http.base_url), of.origin, of.email, path)


def revoke_person(admin: Human, email: str) -> None:
    answer = admin.post("/v1/admin/revocations", {"user": email}, admin.session)
    assert answer.status_code == 201, answer.text


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def commits_to(options: dict[str, Any], canonical: str) -> bool:
    challenge = b64decode(options["publicKey"]["challenge"])
    return challenge[16:] == hashlib.sha256(ACTION_DOMAIN + canonical.encode()).digest()


# --- a bearer session never adds a key (issue 12 item 1, issue 22 hole 1) -----------------------


def test_a_session_alone_cannot_add_a_key(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    alice = human_factory()
    thief = spare_key(alice, tmp_path / "thief.json")  # holds alice's session, not her key
    begin = thief.begin_enrollment(token=alice.session)
    assert begin.status_code == 200
    done = thief.finish_enrollment(begin.json())  # no approval: the stolen session alone
    assert problem(done) == (401, "assertion-rejected")
    assert "tap from one of your registered keys" in done.json()["detail"]
    with pytest.raises(AssertionRejected) as caught:
        thief.login(email=None)  # its discoverable credential, whatever the allow-list says
    assert caught.value.detail == "this security key is not registered"
    assert audited(broker, "enrolled")[-1]["actor"] == alice.email  # only her first key
    assert len(audited(broker, "enrolled")) == 1


def test_adding_a_key_takes_a_user_verified_tap_from_an_active_key_of_the_same_person(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    alice = human_factory()
    bob = human_factory("bob@example.com")
    spare = spare_key(alice, tmp_path / "spare.json")

    def attempt(approver: Human) -> httpx.Response:
        begin = spare.begin_enrollment(token=alice.session)
        assert begin.status_code == 200, begin.text
        return spare.finish_enrollment(begin.json(), approver=approver)

    by_bob = attempt(bob)  # somebody else's registered key
    assert problem(by_bob) == (401, "assertion-rejected")
    by_itself = attempt(spare)  # the key being added cannot vouch for itself
    assert problem(by_itself) == (401, "assertion-rejected")
    assert "not registered" in by_itself.json()["detail"]
    alice.device.uv_mode = "skip"  # alice's key, but without its PIN
    no_pin = attempt(alice)
    assert problem(no_pin) == (401, "assertion-rejected")
    assert "user verification" in no_pin.json()["detail"].lower()
    alice.device.uv_mode = "pin"

    ceremony = spare.begin_enrollment(token=alice.session).json()
    approval = ceremony["approval"]
    assert approval["action"] == {
        "action": "add-key",
        "by": alice.email,
        "email": alice.email,
        "enrollment": ceremony["options"]["publicKey"]["challenge"],
    }
    assert json.loads(approval["action_canonical"]) == approval["action"]
    assert commits_to(approval["options"], approval["action_canonical"])
    done = spare.finish_enrollment(ceremony, approver=alice)
    assert done.status_code == 200, done.text
    assert done.json()["via"] == "key"
    assert spare.login().count(".") == 2
    assert audited(broker, "enrolled")[-1] | {"ts": ""} == {
        "event": "enrolled",
        "ts": "",
        "actor": alice.email,
        "cid": done.json()["credential"],
        "via": "key",
        "approved_by": cid_of(alice.session),
        "aaguid": "790e0a4e-8962-48d8-bea7-ad25caab203f",
        "software": "true",
        "uv": "true",
    }


def test_with_user_verification_optional_a_found_key_cannot_add_the_finders_key(
    tmp_path: Path, redis_url: str
) -> None:
    policy = tmp_path / "no-uv.toml"
    example = Path("policies/examples/org.toml").read_text()
    policy.write_text(
        example.replace("require_user_verification = true", "require_user_verification = false")
    )
    settings = broker_settings(tmp_path, redis_url, policy_file=str(policy))
    server = BrokerServer(settings).start()
    try:
        alice = person_at(server, "alice@example.com", tmp_path / "alice.json")
        alice.enroll(make_invite(settings, alice.email))
        alice.device.uv_mode = "skip"  # the finder has the key, not its PIN
        session = alice.login()
        assert jwt.decode(session, options={"verify_signature": False})["amr"] == ["hwk"]
        finder = spare_key(alice, tmp_path / "finder.json")
        begin = finder.begin_enrollment(token=session)
        assert begin.status_code == 200
        done = finder.finish_enrollment(begin.json(), approver=alice)
        assert problem(done) == (401, "assertion-rejected")
        assert "user verification" in done.json()["detail"].lower()
        with pytest.raises(AssertionRejected, match="not registered"):
            finder.login(email=None)
    finally:
        server.stop()


def test_a_flagged_key_kills_every_session_it_signed_in_and_cannot_approve_a_key(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    alice = human_factory()
    twin = Human(
        str(alice.http.base_url),
        alice.origin,
        alice.email,
        tmp_path / "twin.json",
        device=alice.device.clone_to(tmp_path / "clone.json"),
    )
    stolen = twin.login()  # the clone signs in first
    with pytest.raises(KeyFlagged) as flagged:
        alice.login()  # the original's counter no longer increases: the key is flagged
    assert (flagged.value.status, flagged.value.slug) == (401, "key-flagged")
    with broker.client(stolen) as http:
        listed = http.get("/v1/delegations")
    assert problem(listed) == (401, "token-revoked")
    assert listed.json()["handle"] == "credential"
    spare = spare_key(alice, tmp_path / "spare.json")
    refused = spare.begin_enrollment(token=stolen)
    assert problem(refused) == (401, "token-revoked")


# --- a revoked person stays revoked (issue 12 item 2) -------------------------------------------


def test_an_enrollment_begun_before_a_revocation_cannot_complete_after_it(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory()
    by_session = spare_key(alice, tmp_path / "spare.json")
    with_session = by_session.begin_enrollment(token=alice.session).json()
    by_invite = spare_key(alice, tmp_path / "invited.json")
    with_invite = by_invite.begin_enrollment(make_invite(broker.settings, alice.email)).json()
    revoke_person(admin, alice.email)
    for human, ceremony in ((by_session, with_session), (by_invite, with_invite)):
        late = human.finish_enrollment(ceremony, approver=alice)
        assert problem(late) == (403, "permission-denied"), human.device
        assert "revoked" in late.json()["detail"]
        with pytest.raises(AssertionRejected) as caught:
            human.login(email=None)
        assert caught.value.detail == "this security key is not registered"


def test_revoking_a_person_cancels_their_unused_invites(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory()
    code = make_invite(broker.settings, alice.email)  # issued before the revocation
    revoke_person(admin, alice.email)
    fresh = spare_key(alice, tmp_path / "fresh.json")
    answer = fresh.begin_enrollment(code)
    assert problem(answer) == (401, "invite-invalid")


def test_adding_a_key_never_lifts_a_revocation_only_an_admin_reinstatement_does(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory()
    revoke_person(admin, alice.email)
    fresh = spare_key(alice, tmp_path / "fresh.json")
    code = make_invite(broker.settings, alice.email)  # the host's invite, after the revocation
    refused = fresh.begin_enrollment(code)
    assert problem(refused) == (403, "permission-denied")
    assert "reinstate" in refused.json()["detail"]

    done = admin.reinstate(alice.email)
    assert done.email == alice.email
    [event] = audited(broker, "reinstated")
    assert (event["actor"], event["subject"], event["cid"]) == (
        admin.email,
        alice.email,
        cid_of(admin.session),
    )
    fresh.enroll(code)
    assert fresh.login().count(".") == 2
    with pytest.raises(AssertionRejected) as caught:
        alice.login(email=None)  # her old key stays revoked: reinstating is not un-revoking
    assert caught.value.detail == "this security key has been revoked"


def test_reinstating_takes_an_admin_tap_bound_to_that_person(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory()
    bob = human_factory("bob@example.com")
    revoke_person(admin, alice.email)
    revoke_person(admin, bob.email)
    not_admin = bob.post("/v1/admin/reinstatements/begin", {"email": alice.email}, bob.session)
    assert problem(not_admin) == (401, "token-revoked")  # bob's session died with him
    carol = human_factory("carol@example.com")
    denied = carol.post("/v1/admin/reinstatements/begin", {"email": alice.email}, carol.session)
    assert problem(denied) == (403, "permission-denied")
    not_revoked = admin.post(
        "/v1/admin/reinstatements/begin", {"email": carol.email}, admin.session
    )
    assert problem(not_revoked) == (409, "conflict")

    begin = admin.post("/v1/admin/reinstatements/begin", {"email": alice.email}, admin.session)
    proposal = begin.json()
    assert proposal["action"] == {"action": "reinstate", "by": admin.email, "email": alice.email}
    assert commits_to(proposal["options"], proposal["action_canonical"])
    # Another person's key cannot tap for the admin; the challenge is spent by the attempt.
    by_carol = admin.post(
        "/v1/admin/reinstatements/complete",
        {
            "challenge_id": proposal["challenge_id"],
            "credential": carol.sign_assertion(proposal["options"], any_key=True),
        },
        admin.session,
    )
    assert problem(by_carol) == (401, "assertion-rejected")
    # A reinstatement challenge does not complete an invite, nor the other way round.
    begin = admin.post("/v1/admin/reinstatements/begin", {"email": alice.email}, admin.session)
    proposal = begin.json()
    crossed = admin.post(
        "/v1/admin/invites/complete",
        {
            "challenge_id": proposal["challenge_id"],
            "credential": admin.sign_assertion(proposal["options"]),
        },
        admin.session,
    )
    assert problem(crossed) == (401, "challenge-invalid")
    assert admin.reinstate(bob.email).email == bob.email
    assert [e["subject"] for e in audited(broker, "reinstated")] == [bob.email]


# --- invites: a tap to issue, listed and cancelled by admins (issue 22 principle) ---------------


def test_a_session_alone_cannot_issue_an_invite(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory()
    minted = admin.post("/v1/admin/invites", {"email": "carol@example.com"}, admin.session)
    assert problem(minted) == (405, "method-not-allowed")
    begin = admin.post("/v1/admin/invites/begin", {"email": "Carol@Example.com"}, admin.session)
    proposal = begin.json()
    assert "code" not in json.dumps(proposal)
    assert proposal["action"] == {
        "action": "invite",
        "by": admin.email,
        "email": "carol@example.com",
    }
    assert commits_to(proposal["options"], proposal["action_canonical"])
    by_alice = admin.post(
        "/v1/admin/invites/complete",
        {
            "challenge_id": proposal["challenge_id"],
            "credential": alice.sign_assertion(proposal["options"], any_key=True),
        },
        admin.session,
    )
    assert problem(by_alice) == (401, "assertion-rejected")
    not_admin = alice.post("/v1/admin/invites/begin", {"email": "x@example.com"}, alice.session)
    assert problem(not_admin) == (403, "permission-denied")
    invite = admin.invite("carol@example.com")
    assert invite.email == "carol@example.com" and invite.id.startswith("inv_")
    [event] = audited(broker, "invited")
    assert (event["actor"], event["subject"], event["invite"], event["cid"]) == (
        admin.email,
        "carol@example.com",
        invite.id,
        cid_of(admin.session),
    )


def test_admins_list_and_cancel_invites(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory()
    invite = admin.invite("carol@example.com")
    listed = admin.http.get(
        "/v1/admin/invites", headers={"Authorization": f"Bearer {admin.session}"}
    ).json()["invites"]
    assert [(i["id"], i["email"], i["created_by"], i["in_use"]) for i in listed] == [
        (invite.id, "carol@example.com", admin.email, False)
    ]
    assert invite.code not in json.dumps(listed)
    denied = alice.http.get(
        "/v1/admin/invites", headers={"Authorization": f"Bearer {alice.session}"}
    )
    assert problem(denied) == (403, "permission-denied")
    cancelled = admin.http.delete(
        f"/v1/admin/invites/{invite.id}", headers={"Authorization": f"Bearer {admin.session}"}
    )
    assert cancelled.status_code == 200 and cancelled.json()["id"] == invite.id
    again = admin.http.delete(
        f"/v1/admin/invites/{invite.id}", headers={"Authorization": f"Bearer {admin.session}"}
    )
    assert problem(again) == (404, "not-found")
    carol = person_at(broker, "carol@example.com", tmp_path / "carol.json")
    assert problem(carol.begin_enrollment(invite.code)) == (401, "invite-invalid")
    assert [e["invite"] for e in audited(broker, "invite_cancelled")] == [invite.id]
    assert (
        admin.http.get(
            "/v1/admin/invites", headers={"Authorization": f"Bearer {admin.session}"}
        ).json()["invites"]
        == []
    )
    # An invite used to enroll is named in the `enrolled` event.
    second = admin.invite("carol@example.com")
    carol.enroll(second.code)
    assert audited(broker, "enrolled")[-1]["via"] == "invite"
    assert audited(broker, "enrolled")[-1]["invite"] == second.id


def test_an_invite_code_is_bound_to_the_first_enrollment_that_begins_with_it(
    broker: BrokerServer, tmp_path: Path
) -> None:
    code = make_invite(broker.settings, "bob@example.com")
    bob = person_at(broker, "bob@example.com", tmp_path / "bob.json")
    racer = person_at(broker, "bob@example.com", tmp_path / "racer.json")
    first = bob.begin_enrollment(code)
    assert first.status_code == 200
    second = racer.begin_enrollment(code)  # read from /proc/PID/cmdline, say
    assert problem(second) == (401, "invite-invalid")
    assert "already in use" in second.json()["detail"]
    assert bob.finish_enrollment(first.json()).status_code == 200
    assert bob.login().count(".") == 2


def test_an_invite_bound_to_an_abandoned_enrollment_is_free_once_its_challenge_expires(
    tmp_path: Path, redis_url: str
) -> None:
    settings = broker_settings(tmp_path, redis_url, challenge_ttl_s=1)
    server = BrokerServer(settings).start()
    try:
        code = make_invite(settings, "bob@example.com")
        bob = person_at(server, "bob@example.com", tmp_path / "bob.json")
        abandoned = bob.begin_enrollment(code).json()
        time.sleep(1.5)
        assert problem(bob.finish_enrollment(abandoned)) == (401, "challenge-invalid")
        bob.enroll(code)  # the code was never used: a new ceremony may take it
        assert bob.login().count(".") == 2
    finally:
        server.stop()


# --- logout, the person's keys, software keys (issue 22 holes 1, 5, 10) -------------------------


def test_logout_revokes_the_session_at_the_broker(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory()
    first = alice.session
    second = alice.login()
    out = alice.post("/v1/logout", {}, first)
    assert out.status_code == 200, out.text
    assert out.json()["email"] == alice.email
    with broker.client(first) as http:
        refused = http.get("/v1/delegations")
    assert problem(refused) == (401, "token-revoked")
    assert refused.json()["handle"] == "session"
    assert "signed out" in refused.json()["detail"]
    with broker.client(second) as http:
        assert http.get("/v1/delegations").status_code == 200  # other sessions live on
    assert audited(broker, "logout")[-1]["actor"] == alice.email


def test_a_person_sees_each_of_their_keys_and_how_it_was_added(
    broker: BrokerServer, human_factory: Callable[..., Human], tmp_path: Path
) -> None:
    alice = human_factory()
    first = cid_of(alice.session)
    spare = spare_key(alice, tmp_path / "spare.json")
    added = spare.enroll(token=alice.session, approver=alice)
    with broker.client(alice.session) as http:
        keys = http.get("/v1/keys").json()["keys"]
    by_cid = {key["cid"]: key for key in keys}
    assert set(by_cid) == {first, added}
    assert by_cid[first]["via"] == "invite" and by_cid[first]["invite"].startswith("inv_")
    assert by_cid[added]["via"] == "key" and by_cid[added]["approved_by"] == first
    for key in keys:
        assert key["state"] == "active" and key["software"] is True
        assert key["added_at"] > 0
    with broker.client() as http:
        assert problem(http.get("/v1/keys")) == (401, "unauthenticated")


@pytest.fixture
def strict_twin(broker: BrokerServer, tmp_path: Path) -> Iterator[BrokerServer]:
    """A second broker on the same Redis with software keys turned off."""
    settings = broker_settings(
        tmp_path / "strict", broker.settings.redis_url, allow_software_keys=False
    )
    server = BrokerServer(settings).start()
    yield server
    server.stop()


def test_a_software_key_enrolled_while_allowed_is_refused_once_they_are_turned_off(
    broker: BrokerServer,
    human_factory: Callable[..., Human],
    strict_twin: BrokerServer,
    tmp_path: Path,
) -> None:
    alice = human_factory()
    at_strict = Human(
        f"http://127.0.0.1:{strict_twin.port}",
        strict_twin.url,
        alice.email,
        tmp_path / "unused.json",
        device=alice.device,
    )
    with pytest.raises(AssertionRejected) as caught:
        at_strict.login()
    assert caught.value.status == 401
    assert "software authenticators" in caught.value.detail
    assert alice.login().count(".") == 2  # where they are allowed, the key still works


# --- account probing and per-email limits (issue 12 items 4 and 9) ------------------------------


def allowed(http: httpx.Client, email: str) -> list[dict[str, Any]]:
    answer = http.post("/v1/login/begin", json={"email": email})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["options"]["publicKey"].get("allowCredentials", []))


def test_login_begin_answers_alike_for_enrolled_unknown_and_revoked_emails(
    broker: BrokerServer, human_factory: Callable[..., Human]
) -> None:
    admin = human_factory("admin@example.com")
    alice = human_factory()
    mallory = human_factory("mallory@example.com")
    revoke_person(admin, mallory.email)
    with broker.client() as http:
        real = allowed(http, alice.email)
        others = {email: allowed(http, email) for email in ("nobody@example.com", mallory.email)}
        again = allowed(http, "nobody@example.com")
        third = allowed(http, "someone.else@example.com")
    assert len(real) == 1
    for email, answer in others.items():
        assert answer, email  # never an empty list: that would say "no such person"
        assert {tuple(sorted(d)) for d in answer} == {tuple(sorted(real[0]))}, email
        assert {len(b64decode(d["id"])) for d in answer} == {len(b64decode(real[0]["id"]))}
    assert again == others["nobody@example.com"]  # stable, so asking twice reveals nothing
    assert third != again and others[mallory.email] != again


@pytest.fixture
def strict(tmp_path: Path, redis_url: str) -> Iterator[BrokerServer]:
    settings = broker_settings(tmp_path, redis_url, rate_login_per_min=3, rate_requests_per_min=2)
    server = BrokerServer(settings).start()
    well_inside_a_minute()
    yield server
    server.stop()


SPELLINGS = ["alice@example.com", "ALICE@example.com", " Alice@Example.COM", "alice@EXAMPLE.com"]


def test_per_email_limits_count_every_spelling_of_one_email(strict: BrokerServer) -> None:
    def from_host(n: int) -> dict[str, str]:  # a botnet: each attempt from its own address
        return {"X-Forwarded-For": f"10.0.{n // 250}.{n % 250 + 1}"}

    with strict.client() as http:
        logins = [
            http.post("/v1/login/begin", json={"email": e}, headers=from_host(i)).status_code
            for i, e in enumerate(SPELLINGS)
        ]
        enrolls = [
            http.post(
                "/v1/enroll/begin", json={"email": e, "code": "ABCD"}, headers=from_host(10 + i)
            ).status_code
            for i, e in enumerate(SPELLINGS)
        ]
        body = {"agent": "nightly", "models": [HAIKU]}
        requests = [
            http.post(
                "/v1/delegation-requests", json={"email": e, **body}, headers=from_host(20 + i)
            ).status_code
            for i, e in enumerate(SPELLINGS[:3])
        ]
    assert logins == [200, 200, 200, 429]
    assert enrolls == [401, 401, 401, 429]
    assert requests == [201, 201, 429]


# --- logs (issue 12 item 12) --------------------------------------------------------------------


def encodings(raw: bytes) -> list[str]:
    """Every spelling a raw id could take in a log line."""
    return [
        raw.hex(),
        raw.hex().upper(),
        base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        base64.b64encode(raw).rstrip(b"=").decode(),
        repr(raw),
    ]


def test_a_full_ceremony_at_debug_logs_no_raw_credential_id_token_or_secret(
    broker: BrokerServer,
    sts_gate: StsGate,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    code = make_invite(broker.settings, "alice@example.com")
    alice = person_at(broker, "alice@example.com", tmp_path / "alice.json")
    alice.enroll(code)
    session = alice.login()
    spare = spare_key(alice, tmp_path / "spare.json")
    spare.enroll(token=session, approver=alice)
    usernameless = spare.login(email=None)
    done = alice.delegate("researcher", [HAIKU])
    with broker.client(done.token) as agent:
        doc = agent.post("/v1/credentials/aws").json()
    alice.post("/v1/logout", {}, usernameless)
    raw_ids = [b64decode(i) for i in alice.credential_ids + spare.credential_ids]
    assert len(raw_ids) == 2
    handle = hashlib.sha256(b"vouch-user:" + alice.email.encode()).digest()[:16]
    secrets = [code, session, usernameless, done.token, doc["SecretAccessKey"]]
    secrets += [doc["SessionToken"]]
    for raw in [*raw_ids, handle]:
        secrets += encodings(raw)
    stream = redis.Redis.from_url(broker.settings.redis_url).xrange("vouch:audit")
    written = caplog.text + "\n".join(str(fields) for _, fields in stream)
    assert len(caplog.records) > 10  # DEBUG was on: the check looked at something
    for secret in secrets:
        assert secret not in written, secret
