"""BrokerClient against a scripted broker on real HTTP: each method's request on the wire,
its decoded answer, and malformed or hostile answers as InvalidResponse."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from vouch_delegate import (
    BrokerClient,
    BrokerUnavailable,
    InvalidResponse,
    TokenRevoked,
    Transport,
    VouchError,
)
from vouch_delegate._messages import (
    ActionApproval,
    ActionProposal,
    AgentToken,
    AuditPage,
    Ceremony,
    CredentialDocument,
    Delegation,
    DelegationProposal,
    EnrollBegin,
    Enrolled,
    Invite,
    InviteCreated,
    PendingRequest,
    PeoplePage,
    PersonInfo,
    Reinstated,
    RequestCreated,
    RequestStatus,
    RevocationDone,
    SessionIssued,
    SignedOut,
)

from tests.unit.sdk.fakes import FakeBroker

pytestmark = pytest.mark.unit

SESSION = "session.jwt"
OPTIONS = {"publicKey": {"challenge": "Y2hhbGxlbmdl", "rpId": "localhost"}}
CEREMONY = {"challenge_id": "c" * 32, "options": OPTIONS}
GRANT = {
    "email": "alice@example.com",
    "agent": "researcher",
    "models": ["us.anthropic.claude-haiku-4-5-20251001-v1:0"],
    "ttl_s": 7200,
    "purpose": "",
    "max_sts_s": None,
    "rate": 5,
}
DELEGATION = {
    "id": "dlg_1",
    "email": "alice@example.com",
    "agent": "researcher",
    "sub": "agent.researcher.alice@example.com",
    "models": ["us.anthropic.claude-haiku-4-5-20251001-v1:0"],
    "cid": "cid1",
    "created_at": 1_800_000_000,
    "expires_at": 1_800_007_200,
    "purpose": "",
    "max_sts_s": None,
    "rate": 5,
    "revoked_at": None,
    "revoked_by": None,
}
CREATED = {
    "request_id": "dreq_1",
    "user_code": "BCDF-GHJK",
    "poll_secret": "s3cret",
    "expires_at": 1_800_000_300,
    "interval": 2,
}
PENDING = {
    "user_code": "BCDF-GHJK",
    "agent": "nightly",
    "models": ["us.anthropic.claude-haiku-4-5-20251001-v1:0"],
    "ttl_s": 3600,
    "message": "nightly report",
    "address": "192.0.2.7",
    "created_at": 1_800_000_000,
    "expires_at": 1_800_000_300,
}
DOCUMENT = {
    "Version": 1,
    "AccessKeyId": "ASIAEXAMPLE",
    "SecretAccessKey": "secret",
    "SessionToken": "session",
    "Expiration": "2027-01-15T08:00:00Z",
}
CREDENTIAL = {"id": "a2V5", "type": "public-key", "response": {"clientDataJSON": "e30"}}
ACTION = {"action": "invite", "by": "admin@example.com", "email": "bob@example.com"}
APPROVAL = {"action": ACTION, "action_canonical": "{}", "options": OPTIONS}
PROPOSAL = {"challenge_id": "e" * 32, **APPROVAL}
INVITE = {
    "id": "inv_1",
    "email": "bob@example.com",
    "created_by": "admin@example.com",
    "created_at": 1_800_000_000,
    "expires_at": 1_800_259_200,
    "in_use": False,
}
INVITE_CREATED = {
    "id": "inv_1",
    "email": "bob@example.com",
    "code": "ABCD-EFGH",
    "expires_in": 259200,
    "expires_at": 1_800_259_200,
}
KEY = {
    "cid": "cid1",
    "state": "active",
    "added_at": 1_800_000_000,
    "last_used": None,
    "via": "invite",
    "invite": "inv_1",
    "approved_by": None,
    "aaguid": "790e0a4e-8962-48d8-bea7-ad25caab203f",
    "software": True,
}


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with FakeBroker() as server:
        yield server


def client(broker: FakeBroker, session: str | None = SESSION) -> BrokerClient:
    return BrokerClient(broker.url, session=session, transport=Transport(sleep=lambda _: None))


@dataclass(frozen=True)
class Case:
    """One method: the call, what must reach the broker, its answer, and what comes back."""

    call: Callable[[BrokerClient], Any]
    method: str
    path: str
    body: Any
    bearer: str | None
    reply: dict[str, Any]
    returns: Any
    query: dict[str, list[str]] = field(default_factory=dict)


REVOKED = {**DELEGATION, "revoked_at": 1_800_000_100, "revoked_by": "alice@example.com"}

CASES = {
    "enroll_begin with an invite": Case(
        lambda c: c.with_session(None).enroll_begin("alice@example.com", "ABCD-EFGH"),
        "POST",
        "/v1/enroll/begin",
        {"email": "alice@example.com", "code": "ABCD-EFGH"},
        None,
        CEREMONY,
        msgspec.convert(CEREMONY, Ceremony),
    ),
    "enroll_begin adding a key with a session": Case(
        lambda c: c.enroll_begin("alice@example.com"),
        "POST",
        "/v1/enroll/begin",
        {"email": "alice@example.com"},
        SESSION,
        CEREMONY,
        msgspec.convert(CEREMONY, Ceremony),
    ),
    "enroll_complete never sends the session": Case(
        lambda c: c.enroll_complete("c" * 32, CREDENTIAL),
        "POST",
        "/v1/enroll/complete",
        {"challenge_id": "c" * 32, "credential": CREDENTIAL},
        None,
        {"email": "alice@example.com", "credential": "cid1"},
        Enrolled("alice@example.com", "cid1"),
    ),
    "enroll_complete with an approving tap": Case(
        lambda c: c.enroll_complete("c" * 32, CREDENTIAL, {**CREDENTIAL, "id": "b2xk"}),
        "POST",
        "/v1/enroll/complete",
        {
            "challenge_id": "c" * 32,
            "credential": CREDENTIAL,
            "approval": {**CREDENTIAL, "id": "b2xk"},
        },
        None,
        {"email": "alice@example.com", "credential": "cid2", "via": "key"},
        Enrolled("alice@example.com", "cid2", "key"),
    ),
    "enroll_begin answers what the approving key must tap": Case(
        lambda c: c.enroll_begin("alice@example.com").approval,
        "POST",
        "/v1/enroll/begin",
        {"email": "alice@example.com"},
        SESSION,
        {**CEREMONY, "approval": APPROVAL},
        msgspec.convert(APPROVAL, ActionApproval),
    ),
    "logout": Case(
        lambda c: c.logout(),
        "POST",
        "/v1/logout",
        None,
        SESSION,
        {"email": "alice@example.com", "signed_out_at": 1_800_000_000.5},
        SignedOut("alice@example.com", 1_800_000_000.5),
    ),
    "list_keys": Case(
        lambda c: [(k.cid, k.via, k.approved_by, k.software) for k in c.list_keys()],
        "GET",
        "/v1/keys",
        None,
        SESSION,
        {"keys": [KEY, {**KEY, "cid": "cid2", "via": "key", "approved_by": "cid1"}]},
        [("cid1", "invite", None, True), ("cid2", "key", "cid1", True)],
    ),
    "login_begin usernameless": Case(
        lambda c: c.login_begin(),
        "POST",
        "/v1/login/begin",
        {"email": None},
        None,
        CEREMONY,
        msgspec.convert(CEREMONY, Ceremony),
    ),
    "login_complete": Case(
        lambda c: c.login_complete("c" * 32, CREDENTIAL),
        "POST",
        "/v1/login/complete",
        {"challenge_id": "c" * 32, "credential": CREDENTIAL},
        None,
        {"token": "s.t", "token_type": "Bearer", "expires_at": 1_800_028_800, "email": "a@b.c"},
        SessionIssued("s.t", "Bearer", 1_800_028_800, "a@b.c"),
    ),
    "delegation_begin with a grant": Case(
        lambda c: c.delegation_begin(
            agent="researcher", models=["us.claude-haiku-4-5"], ttl_s=7200, purpose="", rate=5
        ),
        "POST",
        "/v1/delegations/begin",
        {
            "agent": "researcher",
            "models": ["us.claude-haiku-4-5"],
            "ttl_s": 7200,
            "purpose": "",
            "rate": 5,
        },
        SESSION,
        {"challenge_id": "d" * 32, "grant": GRANT, "grant_canonical": "{}", "options": OPTIONS},
        msgspec.convert(
            {"challenge_id": "d" * 32, "grant": GRANT, "grant_canonical": "{}", "options": OPTIONS},
            DelegationProposal,
        ),
    ),
    "delegation_begin with a budget": Case(
        lambda c: c.delegation_begin(
            agent="researcher", models=["us.claude-haiku-4-5"], ttl_s=7200, budget="0.50"
        ),
        "POST",
        "/v1/delegations/begin",
        {
            "agent": "researcher",
            "models": ["us.claude-haiku-4-5"],
            "ttl_s": 7200,
            "budget": "0.50",
        },
        SESSION,
        {"challenge_id": "d" * 32, "grant": GRANT, "grant_canonical": "{}", "options": OPTIONS},
        msgspec.convert(
            {"challenge_id": "d" * 32, "grant": GRANT, "grant_canonical": "{}", "options": OPTIONS},
            DelegationProposal,
        ),
    ),
    "delegation_begin for an agent's request": Case(
        lambda c: c.delegation_begin(request_code="BCDF-GHJK"),
        "POST",
        "/v1/delegations/begin",
        {"request_code": "BCDF-GHJK"},
        SESSION,
        {"challenge_id": "d" * 32, "grant": GRANT, "grant_canonical": "{}", "options": OPTIONS},
        msgspec.convert(
            {"challenge_id": "d" * 32, "grant": GRANT, "grant_canonical": "{}", "options": OPTIONS},
            DelegationProposal,
        ),
    ),
    "delegation_complete": Case(
        lambda c: c.delegation_complete("d" * 32, CREDENTIAL),
        "POST",
        "/v1/delegations/complete",
        {"challenge_id": "d" * 32, "credential": CREDENTIAL},
        SESSION,
        {"delegation": DELEGATION, "token": "a.g.t"},
        msgspec.convert({"delegation": DELEGATION, "token": "a.g.t"}, AgentToken),
    ),
    "list_delegations": Case(
        lambda c: [d.id for d in c.list_delegations()],
        "GET",
        "/v1/delegations",
        None,
        SESSION,
        {"delegations": [DELEGATION, {**DELEGATION, "id": "dlg_2"}]},
        ["dlg_1", "dlg_2"],
    ),
    "list_delegations of everyone": Case(
        lambda c: c.list_delegations(everyone=True),
        "GET",
        "/v1/delegations",
        None,
        SESSION,
        {"delegations": []},
        [],
        query={"all": ["true"]},
    ),
    "revoke_delegation": Case(
        lambda c: msgspec.to_builtins(c.revoke_delegation("dlg_1", wait_s=10)),
        "DELETE",
        "/v1/delegations/dlg_1",
        None,
        SESSION,
        {**REVOKED, "aws_sessions": "cut"},
        {**REVOKED, "aws_sessions": "cut", "state": None, "revoked_handle": None}
        | {"revoked_reason": None, "jkt": None, "budget": None, "spent": None},
        query={"wait_s": ["10"]},
    ),
    "create_request": Case(
        lambda c: c.create_request(
            email="alice@example.com", agent="nightly", models=["m1"], ttl_s=600, message="hi"
        ),
        "POST",
        "/v1/delegation-requests",
        {
            "email": "alice@example.com",
            "agent": "nightly",
            "models": ["m1"],
            "ttl_s": 600,
            "message": "hi",
        },
        None,
        CREATED,
        RequestCreated("dreq_1", "BCDF-GHJK", "s3cret", 1_800_000_300, 2.0),
    ),
    "create_request with a budget": Case(
        lambda c: c.create_request(
            email="alice@example.com", agent="nightly", models=["m1"], ttl_s=600, budget="5.00"
        ),
        "POST",
        "/v1/delegation-requests",
        {
            "email": "alice@example.com",
            "agent": "nightly",
            "models": ["m1"],
            "ttl_s": 600,
            "budget": "5.00",
        },
        None,
        CREATED,
        RequestCreated("dreq_1", "BCDF-GHJK", "s3cret", 1_800_000_300, 2.0),
    ),
    "poll_request with the poll secret": Case(
        lambda c: c.poll_request("dreq_1", "s3cret"),
        "GET",
        "/v1/delegation-requests/dreq_1",
        None,
        "s3cret",
        {"status": "approved", "interval": 2, "token": "a.g.t", "delegation_id": "dlg_1"},
        RequestStatus("approved", 2.0, "a.g.t", "dlg_1"),
    ),
    "list_requests": Case(
        lambda c: c.list_requests(),
        "GET",
        "/v1/delegation-requests",
        None,
        SESSION,
        {"requests": [PENDING]},
        [PendingRequest(**PENDING)],
    ),
    "deny_request": Case(
        lambda c: c.deny_request("BCDF-GHJK"),
        "POST",
        "/v1/delegation-requests/deny",
        {"user_code": "BCDF-GHJK"},
        SESSION,
        {"status": "denied", "interval": 2},
        RequestStatus("denied", 2.0),
    ),
    "exchange_aws narrowed": Case(
        lambda c: c.exchange_aws("agent.jwt", models=["m1"], duration_s=900),
        "POST",
        "/v1/credentials/aws",
        {"models": ["m1"], "duration_s": 900},
        "agent.jwt",
        DOCUMENT,
        CredentialDocument(
            "ASIAEXAMPLE", "secret", "session", datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
        ),
    ),
    "exchange_aws with no body": Case(
        lambda c: c.exchange_aws("agent.jwt").access_key_id,
        "POST",
        "/v1/credentials/aws",
        None,
        "agent.jwt",
        DOCUMENT,
        "ASIAEXAMPLE",
    ),
    "invite_begin": Case(
        lambda c: c.invite_begin("bob@example.com"),
        "POST",
        "/v1/admin/invites/begin",
        {"email": "bob@example.com"},
        SESSION,
        PROPOSAL,
        msgspec.convert(PROPOSAL, ActionProposal),
    ),
    "invite_complete": Case(
        lambda c: c.invite_complete("e" * 32, CREDENTIAL),
        "POST",
        "/v1/admin/invites/complete",
        {"challenge_id": "e" * 32, "credential": CREDENTIAL},
        SESSION,
        INVITE_CREATED,
        InviteCreated("inv_1", "bob@example.com", "ABCD-EFGH", 259200, 1_800_259_200),
    ),
    "list_invites": Case(
        lambda c: c.list_invites(),
        "GET",
        "/v1/admin/invites",
        None,
        SESSION,
        {"invites": [INVITE]},
        [Invite("inv_1", "bob@example.com", "admin@example.com", 1_800_000_000, 1_800_259_200)],
    ),
    "cancel_invite": Case(
        lambda c: c.cancel_invite("inv_1"),
        "DELETE",
        "/v1/admin/invites/inv_1",
        None,
        SESSION,
        INVITE,
        Invite("inv_1", "bob@example.com", "admin@example.com", 1_800_000_000, 1_800_259_200),
    ),
    "reinstate_begin": Case(
        lambda c: c.reinstate_begin("bob@example.com"),
        "POST",
        "/v1/admin/reinstatements/begin",
        {"email": "bob@example.com"},
        SESSION,
        PROPOSAL,
        msgspec.convert(PROPOSAL, ActionProposal),
    ),
    "reinstate_complete": Case(
        lambda c: c.reinstate_complete("e" * 32, CREDENTIAL),
        "POST",
        "/v1/admin/reinstatements/complete",
        {"challenge_id": "e" * 32, "credential": CREDENTIAL},
        SESSION,
        {"email": "bob@example.com", "reinstated_at": 1_800_000_000.5},
        Reinstated("bob@example.com", 1_800_000_000.5),
    ),
    "create_revocation": Case(
        lambda c: c.create_revocation(agent="agent.x.alice@example.com", reason="leak"),
        "POST",
        "/v1/admin/revocations",
        {"agent": "agent.x.alice@example.com", "reason": "leak"},
        SESSION,
        {"handle": "agent", "value": "agent.x.alice@example.com", "revoked_at": 1_800_000_000.5},
        RevocationDone("agent", "agent.x.alice@example.com", 1_800_000_000.5),
    ),
    "read_audit": Case(
        lambda c: c.read_audit(limit=5, before="1-0"),
        "GET",
        "/v1/admin/audit",
        None,
        SESSION,
        {"events": [{"id": "1-0", "event": "invited", "ts": "1800000000.000"}]},
        [{"id": "1-0", "event": "invited", "ts": "1800000000.000"}],
        query={"limit": ["5"], "before": ["1-0"]},
    ),
    "audit_page filtered": Case(
        lambda c: c.audit_page(
            limit=2, since=1_800_000_000.25, person="alice@example.com", agent="researcher"
        ),
        "GET",
        "/v1/admin/audit",
        None,
        SESSION,
        {
            "events": [{"id": "2-0", "event": "login", "ts": 1_800_000_001.5, "uv": True}],
            "next": "1-18446744073709551615",
        },
        AuditPage(
            [{"id": "2-0", "event": "login", "ts": 1_800_000_001.5, "uv": True}],
            "1-18446744073709551615",
        ),
        query={
            "limit": ["2"],
            "since": ["1800000000.250"],
            "person": ["alice@example.com"],
            "agent": ["researcher"],
        },
    ),
    "people_page": Case(
        lambda c: c.people_page(limit=1, after="alice@example.com"),
        "GET",
        "/v1/admin/people",
        None,
        SESSION,
        {
            "people": [
                {
                    "email": "bob@example.com",
                    "state": "revoked",
                    "since": 1_800_000_000,
                    "keys": {"revoked": 2},
                }
            ],
            "next": "bob@example.com",
        },
        PeoplePage(
            [PersonInfo("bob@example.com", "revoked", 1_800_000_000, {"revoked": 2})],
            "bob@example.com",
        ),
        query={"limit": ["1"], "after": ["alice@example.com"]},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_method_sends_its_request_and_decodes_the_answer(
    broker: FakeBroker, name: str
) -> None:
    case = CASES[name]
    broker.answer(200, case.reply)
    assert case.call(client(broker)) == case.returns
    [seen] = broker.seen
    assert (seen.method, seen.path, seen.query) == (case.method, case.path, case.query)
    assert seen.json == case.body
    assert seen.bearer == case.bearer
    if case.body is not None:
        assert seen.headers["content-type"] == "application/json"


# A field each answer cannot do without, and a wrong type for one, as msgspec names them.
MALFORMED = {
    "enroll_begin with an invite": ("challenge_id", ("options", ["publicKey"]), "object"),
    "enroll_complete never sends the session": ("credential", ("email", 7), "str"),
    "login_begin usernameless": ("options", ("options", {"publicKey": "x"}), "object"),
    "login_complete": ("token", ("expires_at", "tomorrow"), "int"),
    "delegation_begin with a grant": ("grant_canonical", ("grant", {"email": "a"}), None),
    "delegation_complete": ("delegation", ("token", 5), "str | null"),
    "list_delegations": ("delegations", ("delegations", [{"id": "dlg_1"}]), None),
    "revoke_delegation": ("id", ("models", "m1"), "array"),
    "create_request": ("poll_secret", ("expires_at", None), "int"),
    "poll_request with the poll secret": ("status", ("token", ["a"]), "str | null"),
    "list_requests": ("requests", ("requests", [{**PENDING, "ttl_s": "1h"}]), "int"),
    "deny_request": ("status", ("status", False), "str"),
    "exchange_aws narrowed": ("SessionToken", ("Expiration", 1_800_000_000), "datetime"),
    "invite_begin": ("action_canonical", ("action", {"action": "invite"}), None),
    "invite_complete": ("code", ("expires_in", "3 days"), "int"),
    "list_invites": ("invites", ("invites", [{"id": "inv_1"}]), None),
    "cancel_invite": ("created_by", ("in_use", "no"), "bool"),
    "reinstate_complete": ("reinstated_at", ("email", 5), "str"),
    "logout": ("signed_out_at", ("email", None), "str"),
    "list_keys": ("keys", ("keys", [{"cid": "x"}]), None),
    "create_revocation": ("value", ("revoked_at", "now"), "float"),
    "read_audit": ("events", ("events", [{"models": [1]}]), "str"),
    "audit_page filtered": ("events", ("next", 5), "str | null"),
    "people_page": ("people", ("next", 5), "str | null"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_an_answer_missing_a_field_is_an_invalid_response_naming_it(
    broker: FakeBroker, name: str
) -> None:
    case = CASES[name]
    missing, _, _ = MALFORMED[name]
    reply = copy.deepcopy(case.reply)
    del reply[missing]
    broker.answer(200, reply)
    with pytest.raises(InvalidResponse) as caught:
        case.call(client(broker))
    assert caught.value.detail == (
        f"the broker's answer to {case.method} {case.path} is malformed: "
        f"Object missing required field `{missing}`"
    )
    assert caught.value.slug == "invalid-response"


@pytest.mark.parametrize("name", list(MALFORMED))
def test_an_answer_with_a_wrong_type_is_an_invalid_response(broker: FakeBroker, name: str) -> None:
    case = CASES[name]
    _, (member, value), expected = MALFORMED[name]
    broker.answer(200, {**copy.deepcopy(case.reply), member: value})
    with pytest.raises(InvalidResponse) as caught:
        case.call(client(broker))
    prefix = f"the broker's answer to {case.method} {case.path} is malformed: "
    assert caught.value.detail.startswith(prefix)
    if expected is not None:
        assert f"Expected `{expected}`" in caught.value.detail
    assert "at `$." in caught.value.detail  # the offending field is named


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>Sign in to the hotel Wi-Fi</html>", "text/html"),
        (b'["not", "an", "object"]', "application/json"),
        (b"", "application/json"),
        (b'{"delegations": [' + b'"x",' * 400_000 + b'"x"]}', "application/json"),  # > 1 MiB
    ],
)
def test_a_success_that_is_not_a_json_object_is_an_invalid_response(
    broker: FakeBroker, body: bytes, content_type: str
) -> None:
    broker.answer(200, body, content_type)
    with pytest.raises(InvalidResponse, match="without a JSON object"):
        client(broker).list_delegations()


def test_members_a_newer_broker_adds_are_ignored(broker: FakeBroker) -> None:
    broker.answer(200, {**CREATED, "qr_code": "data:...", "interval": 5})
    created = client(broker).create_request(email="a@b.c", agent="x", models=["m"], ttl_s=60)
    assert created.interval == 5.0
    assert not hasattr(created, "qr_code")


def test_problems_stay_the_transports_typed_errors(broker: FakeBroker) -> None:
    problem = {"type": "urn:vouch:problem:token-revoked", "status": 401, "detail": "revoked"}
    broker.answer(401, problem, "application/problem+json")
    with pytest.raises(TokenRevoked, match="revoked") as caught:
        client(broker).exchange_aws("agent.jwt")
    assert caught.value.problem == problem


def test_the_exchange_is_retried_and_other_posts_are_not(broker: FakeBroker) -> None:
    down = {"type": "urn:vouch:problem:store-unavailable", "status": 503, "detail": "down"}
    broker.answer(503, down, "application/problem+json")
    broker.answer(200, DOCUMENT)
    assert client(broker).exchange_aws("agent.jwt").session_token == "session"
    assert [s.path for s in broker.seen] == ["/v1/credentials/aws"] * 2
    broker.answer(503, down, "application/problem+json")
    with pytest.raises(BrokerUnavailable):
        client(broker).invite_complete("e" * 32, CREDENTIAL)
    assert len(broker.seen) == 3


def test_ids_stay_one_path_segment(broker: FakeBroker) -> None:
    broker.answer(200, DELEGATION)
    broker.answer(200, {"status": "pending"})
    broker.answer(200, {"status": "pending"})
    client(broker).revoke_delegation("../admin/invites")
    client(broker).poll_request("x?all=true", "s")
    client(broker).poll_request("a b#c", "s")
    assert [(s.path, s.query) for s in broker.seen] == [
        ("/v1/delegations/..%2Fadmin%2Finvites", {}),
        ("/v1/delegation-requests/x%3Fall%3Dtrue", {}),
        ("/v1/delegation-requests/a%20b%23c", {}),
    ]


def test_with_session_shares_the_transport_and_leaves_the_original_alone() -> None:
    original = BrokerClient("https://vouch.example.com/", session="one")
    other = original.with_session("two")
    anonymous = original.with_session(None)
    assert (original.session, other.session, anonymous.session) == ("one", "two", None)
    assert other.transport is original.transport is anonymous.transport
    assert other.server == original.server == "https://vouch.example.com"


def test_the_server_url_is_checked_like_the_transports() -> None:
    with pytest.raises(VouchError, match="must use https"):
        BrokerClient("http://vouch.example.com")


SECRET = "eyJ.SECRET-VALUE-0123456789.sig"


@pytest.mark.parametrize(
    "holder",
    [
        SessionIssued(SECRET, "Bearer", 1, "alice@example.com"),
        AgentToken(msgspec.convert(DELEGATION, Delegation), token=SECRET),
        RequestCreated("dreq_1", "BCDF-GHJK", SECRET, 1),
        RequestStatus("approved", token=SECRET),
        InviteCreated("inv_1", "bob@example.com", SECRET, 3600, 1_800_003_600),
        EnrollBegin("bob@example.com", SECRET),
        CredentialDocument("ASIAEXAMPLE", SECRET, SECRET, datetime(2027, 1, 1, tzinfo=UTC)),
    ],
    ids=lambda holder: type(holder).__name__,
)
def test_replies_holding_a_secret_mask_it_in_repr(holder: msgspec.Struct) -> None:
    # A traceback with locals or an error reporter prints repr(): no token may reach it.
    assert SECRET not in repr(holder) and SECRET[4:20] not in repr(holder)
    assert SECRET not in str(holder)
    assert "hidden" in repr(holder)
    assert SECRET in msgspec.json.encode(holder).decode()  # the value itself is intact
