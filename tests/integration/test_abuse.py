"""Abuse and bad input: each refused with its exact problem, nothing reaching STS, logs intact
(docs/design.md section 5, invariants 3, 6, 8, 9)."""

from __future__ import annotations

import io
import json
import logging
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.keys import load_key_ring
from broker.logs import JsonFormatter
from broker.tokens import STS_TYP, mint
from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import make_invite

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
PROBLEM_JSON = "application/problem+json"
LIMIT = 64 * 1024
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


def problem(answer: httpx.Response) -> tuple[int, str]:
    """(status, slug) of a problem answer, after checking it is a well-formed problem."""
    assert answer.headers["content-type"].startswith(PROBLEM_JSON), answer.text
    body = answer.json()
    assert body["status"] == answer.status_code
    assert body["title"] and body["detail"]
    return answer.status_code, str(body["type"]).removeprefix("urn:vouch:problem:")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(
    broker: BrokerServer, human_factory: Callable[..., Human], http: httpx.Client
) -> dict[str, Any]:
    """Alice with an agent, an admin, an agent's pending request, and one token of each type."""
    alice = human_factory("alice@example.com")
    admin = human_factory("admin@example.com")
    done = alice.delegate("researcher", [HAIKU])
    asked = http.post(
        "/v1/delegation-requests",
        json={"email": alice.email, "agent": "nightly", "models": [HAIKU]},
    ).json()
    ring = load_key_ring(Path(broker.settings.signing_keys or ""))
    now = int(time.time())
    sts_shaped = mint(  # what the broker sends STS: right keys, wrong door
        {
            "iss": broker.url,
            "aud": "sts.amazonaws.com",
            "sub": done.delegation.sub,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
            "https://aws.amazon.com/source_identity": alice.email,
        },
        typ=STS_TYP,
        keys=ring,
    )
    return {
        "alice": alice,
        "admin": admin,
        "delegation": done.delegation,
        "request": asked,
        "tokens": {
            "session": alice.session,
            "agent": done.token,
            "sts-assertion": sts_shaped,
            "invite-code": make_invite(broker.settings, "carol@example.com"),
            "poll-secret": asked["poll_secret"],
        },
    }


# --- sizes and shapes ---------------------------------------------------------------------------


def body_doors(world: dict[str, Any]) -> list[tuple[str, str | None]]:
    tokens = world["tokens"]
    return [
        ("/v1/login/begin", None),
        ("/v1/enroll/complete", None),
        ("/v1/delegation-requests", None),
        ("/v1/delegations/begin", tokens["session"]),
        ("/v1/delegations/complete", tokens["session"]),
        ("/v1/admin/invites/begin", world["admin"].session),
        ("/v1/credentials/aws", tokens["agent"]),
        ("/v1/credentials/aws/self", tokens["session"]),
    ]


def test_bodies_over_64_kib_are_refused_with_413(
    world: dict[str, Any], http: httpx.Client, sts_gate: StsGate
) -> None:
    def padded(size: int) -> bytes:
        head, tail = b'{"email": "', b'"}'
        return head + b"a" * (size - len(head) - len(tail)) + tail

    def chunked(size: int) -> Iterator[bytes]:  # no Content-Length: the limit applies anyway
        body = padded(size)
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    json_type = {"content-type": "application/json"}
    for path, token in body_doors(world):
        headers = {**json_type, **(bearer(token) if token else {})}
        for content in (padded(LIMIT + 1), chunked(LIMIT + 1), padded(10 * LIMIT)):
            answer = http.post(path, content=content, headers=headers)
            assert problem(answer) == (413, "payload-too-large"), path
        at_limit = http.post(path, content=padded(LIMIT), headers=headers)
        assert at_limit.status_code != 413, path  # the limit is 64 KiB, not less
        assert at_limit.status_code < 500, path
    assert sts_gate.calls == 0


@pytest.mark.parametrize("depth", [1_500, 10_000])  # 10_000 objects: ~60 KiB
def test_deeply_nested_json_is_a_400_not_a_crash(
    world: dict[str, Any], http: httpx.Client, depth: int
) -> None:
    nested_list = b"[" * depth + b"]" * depth
    nested_object = b'{"a":' * depth + b"1" + b"}" * depth
    for path, token in body_doors(world):
        headers = {"content-type": "application/json", **(bearer(token) if token else {})}
        for nested in (nested_list, nested_object):
            whole = http.post(path, content=nested, headers=headers)
            assert problem(whole) == (400, "invalid-request"), (path, whole.text)
            assert "nested too deeply" in whole.json()["detail"]
            inner = b'{"challenge_id": "' + b"c" * 24 + b'", "credential": ' + nested + b"}"
            field = http.post(path, content=inner, headers=headers)
            assert problem(field) == (400, "invalid-request"), (path, field.text)
    assert http.get("/readyz").status_code == 200  # and the broker is none the worse


def test_moderately_nested_credentials_are_refused_cleanly(
    world: dict[str, Any], http: httpx.Client
) -> None:
    alice = world["alice"]
    ceremony = http.post("/v1/login/begin", json={"email": alice.email}).json()
    credential: Any = {"id": "x"}
    for _ in range(200):  # deep, but within what the JSON decoder accepts
        credential = {"response": credential, "id": "x", "type": "public-key"}
    answer = http.post(
        "/v1/login/complete",
        json={"challenge_id": ceremony["challenge_id"], "credential": credential},
    )
    assert problem(answer) == (401, "assertion-rejected")


def test_oversized_tokens_are_refused_before_any_work(
    world: dict[str, Any], http: httpx.Client, sts_gate: StsGate
) -> None:
    real = world["tokens"]["agent"]
    header, payload, signature = real.split(".")
    bloated = f"{header}.{payload}{'A' * 16_384}.{signature}"  # a JWS shape, over 16 KiB
    flat = "a" * 20_000
    for token in (bloated, flat):
        for method, path, body in (
            ("POST", "/v1/credentials/aws", None),
            ("GET", "/v1/delegations", None),
            ("POST", "/v1/delegation-requests/deny", {"user_code": "BCDF"}),
            ("GET", "/v1/admin/audit", None),
        ):
            answer = http.request(method, path, headers=bearer(token), json=body)
            assert problem(answer) == (401, "token-invalid"), path
            assert answer.json()["detail"] == "not a compact JWS"
            assert answer.headers["www-authenticate"] == 'Bearer realm="vouch"'
    polled = http.get(
        f"/v1/delegation-requests/{world['request']['request_id']}", headers=bearer(flat)
    )
    assert problem(polled) == (401, "token-invalid")
    assert sts_gate.calls == 0


def test_audit_cursor_beyond_a_stream_id_is_bad_input_not_an_outage(
    world: dict[str, Any], http: httpx.Client
) -> None:
    admin = bearer(world["admin"].session)
    for before in ("18446744073709551616", "1-18446744073709551616", "9" * 40):
        answer = http.get("/v1/admin/audit", params={"before": before}, headers=admin)
        assert problem(answer) == (400, "invalid-request"), before  # Redis would refuse it
    largest = f"{2**64 - 1}-{2**32}"
    answer = http.get("/v1/admin/audit", params={"before": largest}, headers=admin)
    assert answer.status_code == 200 and answer.json()["events"]


# --- unicode tricks: one person, one agent, one spelling ---------------------------------------

SAME_AS_ALICE = [
    "ALICE@EXAMPLE.COM",
    "Alice@Example.Com",
    "\uff41\uff4c\uff49\uff43\uff45@example.com",  # fullwidth letters: NFKC folds them
    "alice\uff20example.com",  # fullwidth @
    " alice@example.com\t",
]
LOOKALIKES = [
    "\u0430lice@example.com",  # Cyrillic a
    "alice@ex\u0430mple.com",  # Cyrillic a in the domain
    "al\u200bice@example.com",  # zero-width space
    "alice\u200d@example.com",  # zero-width joiner
    "\u202ealice@example.com",  # right-to-left override
    "al\u0130ce@example.com",  # dotted capital I: lower() makes two code points
    "al\u0131ce@example.com",  # dotless i
    "alice@example.com\x00",
    "alice@example.com\nbcc@evil.example",
    "stra\u00dfe@example.com",  # sharp s: not ASCII after NFKC + lower
]


def test_email_spellings_fold_to_one_person_and_lookalikes_are_refused(
    broker: BrokerServer, world: dict[str, Any], http: httpx.Client, tmp_path: Path
) -> None:
    admin, alice = world["admin"], world["alice"]
    keys = http.post("/v1/login/begin", json={"email": alice.email}).json()
    alice_keys = keys["options"]["publicKey"]["allowCredentials"]
    for spelling in SAME_AS_ALICE:
        invited = admin.post("/v1/admin/invites/begin", {"email": spelling}, admin.session)
        assert invited.status_code == 200, spelling
        assert invited.json()["action"]["email"] == alice.email, spelling
        login = http.post("/v1/login/begin", json={"email": spelling})
        assert login.json()["options"]["publicKey"]["allowCredentials"] == alice_keys
    for spelling in LOOKALIKES:
        for answer in (
            admin.post("/v1/admin/invites/begin", {"email": spelling}, admin.session),
            http.post("/v1/login/begin", json={"email": spelling}),
            http.post("/v1/enroll/begin", json={"email": spelling, "code": "ABCD-EFGH"}),
            http.post(
                "/v1/delegation-requests",
                json={"email": spelling, "agent": "nightly", "models": [HAIKU]},
            ),
            admin.post("/v1/admin/revocations", {"user": spelling}, admin.session),
        ):
            assert problem(answer) == (400, "invalid-request"), (spelling, answer.request.url)
    # A second key enrolled under a fullwidth spelling lands on the same person.
    twin = Human(
        str(alice.http.base_url), alice.origin, SAME_AS_ALICE[2], tmp_path / "second-key.json"
    )
    twin.enroll(make_invite(broker.settings, alice.email))
    people = {
        key.decode().split(":")[2]
        for key in redis.Redis.from_url(broker.settings.redis_url).scan_iter("vouch:user:*")
        if key.count(b":") >= 2
    }
    assert people == {"alice@example.com", "admin@example.com"}
    again = http.post("/v1/login/begin", json={"email": alice.email}).json()
    assert len(again["options"]["publicKey"]["allowCredentials"]) == 2


AGENT_LOOKALIKES = [
    "Researcher",
    "\uff52\uff45\uff53\uff45\uff41\uff52\uff43\uff48\uff45\uff52",  # fullwidth
    "r\u0435searcher",  # Cyrillic e
    "re\u200bsearcher",
    "researcher\n",
    "-researcher",
    "researcher.evil",
    "researcher@example.com",
    "researcher\u0000",
]


def test_agent_names_have_one_spelling(world: dict[str, Any], http: httpx.Client) -> None:
    alice, admin = world["alice"], world["admin"]
    for name in AGENT_LOOKALIKES:
        begun = alice.post(
            "/v1/delegations/begin", {"agent": name, "models": [HAIKU]}, alice.session
        )
        asked = http.post(
            "/v1/delegation-requests",
            json={"email": alice.email, "agent": name, "models": [HAIKU]},
        )
        revoked = admin.post(
            "/v1/admin/revocations", {"agent": f"agent.{name}.{alice.email}"}, admin.session
        )
        assert problem(begun) == (400, "grant-invalid"), name
        assert problem(asked) == (400, "grant-invalid"), name
        if name == "researcher.evil":  # parses as agent "researcher" of evil.alice@...: real
            assert revoked.json()["value"] == "agent.researcher.evil.alice@example.com"
        else:
            assert problem(revoked) == (400, "invalid-request"), name
    # An admin's spelling of the person's email is folded onto the agent that exists.
    sub = world["delegation"].sub
    answer = admin.post(
        "/v1/admin/revocations", {"agent": "agent.researcher.ALICE@Example.com"}, admin.session
    )
    assert answer.status_code == 201 and answer.json()["value"] == sub
    with httpx.Client(base_url=str(http.base_url)) as agent:
        refused = agent.post("/v1/credentials/aws", headers=bearer(world["tokens"]["agent"]))
    assert problem(refused) == (401, "token-revoked")


# --- control characters: no log injection ------------------------------------------------------

FORGED = [
    'ok\r\n{"level": "info", "msg": "forged"}',
    "ok\nINFO audit revoked",
    "ok\u2028forged line",
    "ok\u2029forged paragraph",
    "ok\x85forged NEL",
    "ok\x1b[2Jcleared screen",
    "ok\x00nul",
    "ok\x7fdel",
    "invoice\u202egpj.exe",  # right-to-left override
    "hidden\u200btext",
]
ALLOWED = "nightly report \u2014 caf\u00e9 \u2615\twith a tab"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The broker's JSON log lines (broker.logs.JsonFormatter), as `vouch-broker serve` writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def clean(text: str) -> bool:
    """No control (but tab), format or line-separator character."""
    return not any(
        unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} and ch != "\t" for ch in text
    )


def test_control_characters_in_free_text_are_refused_and_logs_stay_one_line_per_event(
    broker: BrokerServer, world: dict[str, Any], http: httpx.Client, json_log: io.StringIO
) -> None:
    alice, admin = world["alice"], world["admin"]
    for text in FORGED:
        purpose = alice.post(
            "/v1/delegations/begin",
            {"agent": "writer", "models": [HAIKU], "purpose": text},
            alice.session,
        )
        message = http.post(
            "/v1/delegation-requests",
            json={"email": alice.email, "agent": "nightly", "models": [HAIKU], "message": text},
        )
        reason = admin.post(
            "/v1/admin/revocations",
            {"delegation": world["delegation"].id, "reason": text},
            admin.session,
        )
        assert problem(purpose) == (400, "grant-invalid"), repr(text)
        assert problem(message) == (400, "grant-invalid"), repr(text)
        assert problem(reason) == (400, "invalid-request"), repr(text)
        assert "control" in purpose.json()["detail"]
    # Ordinary text, tabs and non-ASCII letters included, passes and is audited.
    alice.delegate("writer", [HAIKU], purpose=ALLOWED)
    answer = admin.post(
        "/v1/admin/revocations",
        {"delegation": world["delegation"].id, "reason": ALLOWED},
        admin.session,
    )
    assert answer.status_code == 201
    lines = json_log.getvalue().split("\n")[:-1]
    events = [json.loads(line) for line in lines]  # every line is exactly one JSON object
    assert len(json_log.getvalue().splitlines()) == len(lines)  # no U+2028 or NEL inside one
    audited = [e["audit"] for e in events if e.get("logger") == "vouch.audit"]
    assert {"delegated", "revoked"} <= {e["event"] for e in audited}
    assert any(e.get("purpose") == ALLOWED for e in audited)
    stream = redis.Redis.from_url(broker.settings.redis_url).xrange("vouch:audit")
    assert stream
    for _, fields in stream:
        assert all(clean(value.decode()) for value in fields.values()), fields


# --- model ids carrying policy fragments -------------------------------------------------------

INJECTED_MODELS = [
    "*",
    "us.claude-haiku-4-5*",
    "us.claude-haiku-4-?",
    'us.claude-haiku-4-5","*',
    '"]}],"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
    "arn:aws:bedrock:*::foundation-model/*",
    "arn:aws:bedrock:us-east-1::foundation-model/*",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/*",
    "bedrock:*",
    "us.claude-haiku-4-5\x00",
    "us.claude-haiku-4-5 ",
    "US.CLAUDE-HAIKU-4-5",
    "us.claude-haiku-4-5\nus.claude-opus-4-5",
    "${aws:username}",
    "us.claude-haiku-4-5/../*",
]


def test_model_ids_with_policy_fragments_are_refused_and_never_reach_sts(
    world: dict[str, Any], http: httpx.Client, sts_gate: StsGate
) -> None:
    alice, token = world["alice"], world["tokens"]["agent"]
    for model in INJECTED_MODELS:
        answers = {
            "grant": alice.post(
                "/v1/delegations/begin", {"agent": "writer", "models": [model]}, alice.session
            ),
            "exchange": http.post(
                "/v1/credentials/aws", json={"models": [model]}, headers=bearer(token)
            ),
            "request": http.post(
                "/v1/delegation-requests",
                json={"email": alice.email, "agent": "nightly", "models": [model]},
            ),
        }
        for door, answer in answers.items():
            assert problem(answer) == (400, "grant-invalid"), (door, model, answer.text)
    assert sts_gate.calls == 0  # nothing reached STS
    served = http.post("/v1/credentials/aws", headers=bearer(token))
    assert served.status_code == 200
    [call] = sts_gate.accepted
    assert call.policy is not None and "*" not in call.policy  # exact ARNs only


# --- every token at every other door -----------------------------------------------------------


def doors(world: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any] | None, str]]:
    """door name -> (method, path, json body, the token type it expects)."""
    return {
        "list delegations": ("GET", "/v1/delegations", None, "session"),
        "begin delegation": (
            "POST",
            "/v1/delegations/begin",
            {"agent": "writer", "models": [HAIKU]},
            "session",
        ),
        "revoke delegation": (
            "DELETE",
            f"/v1/delegations/{world['delegation'].id}",
            None,
            "session",
        ),
        "deny request": ("POST", "/v1/delegation-requests/deny", {"user_code": "BCDF"}, "session"),
        "add a key": ("POST", "/v1/enroll/begin", {"email": "alice@example.com"}, "session"),
        "admin audit": ("GET", "/v1/admin/audit", None, "session"),
        "exchange": ("POST", "/v1/credentials/aws", None, "agent"),
        "own credentials": ("POST", "/v1/credentials/aws/self", None, "session"),
        "models": ("GET", "/v1/models", None, "session"),
        "usage": ("GET", "/v1/usage", None, "session"),
        "poll": (
            "GET",
            f"/v1/delegation-requests/{world['request']['request_id']}",
            None,
            "poll-secret",
        ),
    }


def expected_refusal(door_type: str, token_type: str) -> str:
    if door_type == "poll-secret":
        return "wrong poll secret for this delegation request"
    typs = {"session": "vouch-session+jwt", "agent": "vouch-agent+jwt", "sts-assertion": "JWT"}
    if token_type not in typs:
        return "not a compact JWS"
    return f"token type {typs[token_type]!r} is not {typs[door_type]!r}"


def test_every_token_type_is_refused_at_every_door_that_expects_another(
    world: dict[str, Any], http: httpx.Client, sts_gate: StsGate
) -> None:
    tokens: dict[str, str] = world["tokens"]
    tried = 0
    for name, (method, path, body, wanted) in doors(world).items():
        for token_type, token in tokens.items():
            if token_type == wanted:
                continue
            answer = http.request(method, path, json=body, headers=bearer(token))
            assert problem(answer) == (401, "token-invalid"), (name, token_type, answer.text)
            assert answer.json()["detail"] == expected_refusal(wanted, token_type), name
            tried += 1
    assert tried == 11 * 4
    assert sts_gate.calls == 0
    # The right token opens each kind of door (so the refusals above are about the type).
    assert http.get("/v1/delegations", headers=bearer(tokens["session"])).status_code == 200
    assert http.post("/v1/credentials/aws", headers=bearer(tokens["agent"])).status_code == 200
    own = http.post("/v1/credentials/aws/self", headers=bearer(tokens["session"]))
    assert own.status_code == 200
    polled = http.get(
        f"/v1/delegation-requests/{world['request']['request_id']}",
        headers=bearer(tokens["poll-secret"]),
    )
    assert polled.json()["status"] == "pending"
    audit = http.get("/v1/admin/audit", headers=bearer(tokens["session"]))
    assert problem(audit) == (403, "permission-denied")  # a session, but not an admin's


# --- security headers and CORS -----------------------------------------------------------------


def test_security_headers_on_every_response_and_no_store_unless_public(
    world: dict[str, Any], http: httpx.Client, broker: BrokerServer
) -> None:
    alice, admin = world["alice"], world["admin"]
    answers = {
        "200 health": http.get("/healthz"),
        "200 schema": http.get("/schema/openapi.json"),
        "200 metrics": http.get("/metrics"),
        "200 exchange": http.post("/v1/credentials/aws", headers=bearer(world["tokens"]["agent"])),
        "200 poll": http.get(
            f"/v1/delegation-requests/{world['request']['request_id']}",
            headers=bearer(world["tokens"]["poll-secret"]),
        ),
        "201 invite": admin.tapped("/v1/admin/invites", {"email": "dan@example.com"}),
        "204 options": http.options("/v1/credentials/aws"),
        "400 bad body": http.post("/v1/login/begin", json={"email": 5}),
        "401 no token": http.get("/v1/delegations"),
        "403 not admin": alice.post(
            "/v1/admin/invites/begin", {"email": "x@example.com"}, alice.session
        ),
        "404 no route": http.get("/no/such/route"),
        "404 no delegation": http.delete("/v1/delegations/dlg_x", headers=bearer(alice.session)),
        "405 wrong method": http.put("/healthz"),
        "413 too large": http.post("/v1/login/begin", content=b"x" * (LIMIT + 1)),
    }
    for name, answer in answers.items():
        assert str(answer.status_code) == name.split()[0], (name, answer.text)
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header) == value, (name, header)
        assert answer.headers.get("cache-control") == "no-store", name
    # Token-bearing answers in particular must never sit in a cache.
    ceremony = http.post("/v1/login/begin", json={"email": alice.email}).json()
    login = http.post(
        "/v1/login/complete",
        json={
            "challenge_id": ceremony["challenge_id"],
            "credential": alice.sign_assertion(ceremony["options"]),
        },
    )
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    # Discovery documents are public and say so; they still carry the security headers.
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
        public = http.get(path)
        assert public.headers["cache-control"] == "public, max-age=300"
        assert public.headers["x-content-type-options"] == "nosniff"


def test_cors_is_closed_by_default(world: dict[str, Any], http: httpx.Client) -> None:
    evil = {"origin": "https://evil.example"}
    answers = [
        http.get("/healthz", headers=evil),
        http.post("/v1/credentials/aws", headers={**evil, **bearer(world["tokens"]["agent"])}),
        http.get("/v1/delegations", headers={**evil, **bearer(world["tokens"]["session"])}),
        http.options(  # a preflight
            "/v1/credentials/aws",
            headers={
                **evil,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        ),
        http.options(
            "/v1/delegations",
            headers={**evil, "access-control-request-method": "DELETE"},
        ),
    ]
    for answer in answers:
        granted = [h for h in answer.headers if h.lower().startswith("access-control-")]
        assert granted == [], (answer.request.method, answer.request.url.path)
    assert answers[1].status_code == 200  # the request itself works; a browser may not read it
