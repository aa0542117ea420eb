"""`vouch delegate revoke` and `vouch admin revoke` send the same request again while the
broker cannot confirm the revocation (a Redis failover), then say plainly that it failed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from vouch_delegate.cli import _retry, main
from vouch_delegate.cli._store import SavedSession, SessionStore

from tests.unit.sdk.fakes import FakeBroker

UNCONFIRMED = {
    "type": "urn:vouch:problem:revocation-unconfirmed",
    "title": "Revocation not confirmed",
    "status": 503,
    "detail": "not confirmed: written on the primary but acknowledged by 1 of 2 replicas",
}
RECORD = {
    "id": "dlg_1",
    "email": "alice@example.com",
    "agent": "researcher",
    "sub": "agent.researcher.alice@example.com",
    "models": ["us.claude-haiku-4-5"],
    "cid": "cid1",
    "created_at": 1_800_000_000,
    "expires_at": 1_800_007_200,
    "revoked_at": 1_800_000_100,
}


@pytest.fixture
def signed_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_retry, "WAITS_S", (0.0,) * 5)  # same attempts, no waiting
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("VOUCH_SERVER", raising=False)


def save_session(broker: FakeBroker, tmp_path: Path) -> None:
    SessionStore.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).save(
        SavedSession(broker.url, "alice@example.com", "session.jwt", int(time.time()) + 3600)
    )


@pytest.mark.usefixtures("signed_in")
def test_delegate_revoke_retries_the_same_request_until_confirmed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeBroker() as broker:
        save_session(broker, tmp_path)
        broker.answer(503, UNCONFIRMED, "application/problem+json")
        broker.answer(503, UNCONFIRMED, "application/problem+json")
        broker.answer(200, RECORD)
        assert main(["delegate", "revoke", "dlg_1", "--no-wait"]) == 0
    assert [(s.method, s.path) for s in broker.seen] == [("DELETE", "/v1/delegations/dlg_1")] * 3
    out, err = capsys.readouterr()
    assert err.count("vouch: the revocation not confirmed yet (not confirmed: written on") == 2
    assert "trying again in 0 s" in err
    assert "Revoked dlg_1 (researcher); its next exchange is refused." in out + err


@pytest.mark.usefixtures("signed_in")
def test_admin_revoke_says_plainly_that_it_failed_after_every_attempt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeBroker() as broker:
        save_session(broker, tmp_path)
        for _ in range(6):
            broker.answer(503, UNCONFIRMED, "application/problem+json")
        broker.answer(200, {"handle": "agent", "value": "x", "revoked_at": 1.0})  # never asked
        code = main(["admin", "revoke", "--agent", "agent.x.alice@example.com", "--no-wait"])
    assert code == 4  # the documented "broker or its store unavailable"
    assert len(broker.seen) == 6
    assert {(s.method, s.path) for s in broker.seen} == {("POST", "/v1/admin/revocations")}
    assert len({s.body for s in broker.seen}) == 1  # the same request every time
    err = capsys.readouterr().err
    assert err.count("not confirmed yet") == 5
    assert err.endswith(
        "vouch: the revocation was NOT confirmed after 6 attempts: it may not be in force."
        " Run the same command again. Last answer: not confirmed: written on the primary but"
        " acknowledged by 1 of 2 replicas\n"
    )


@pytest.mark.usefixtures("signed_in")
def test_a_refusal_that_cannot_pass_is_not_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeBroker() as broker:
        save_session(broker, tmp_path)
        broker.answer(
            404,
            {"type": "urn:vouch:problem:not-found", "status": 404, "detail": "no such"},
            "application/problem+json",
        )
        assert main(["delegate", "revoke", "dlg_9", "--no-wait"]) == 1
    assert len(broker.seen) == 1
    assert "not confirmed" not in capsys.readouterr().err
