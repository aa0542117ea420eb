"""When AgentCredentials exchanges, with a clock the tests move and a scripted transport."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from vouch_delegate import (
    AgentCredentials,
    AwsCredentials,
    BrokerUnavailable,
    InvalidResponse,
    NetworkError,
    RateLimited,
    TokenExpired,
    TokenRevoked,
)
from vouch_delegate._boto import session_for
from vouch_delegate._credentials import next_refresh_at, pause_s

from tests.unit.sdk.fakes import Clock, FakeBroker, FakeTransport, document, fake_jwt

pytestmark = pytest.mark.unit

TOKEN = fake_jwt({"iss": "https://vouch.example.com", "dlg": "dlg_1"})


def credentials(http: FakeTransport, clock: Clock, **options: Any) -> AgentCredentials:
    return AgentCredentials(token=TOKEN, transport=http, clock=clock, **options)


def test_cached_until_the_margin_then_one_exchange() -> None:
    clock = Clock()
    http = FakeTransport(lambda: document(clock.now + 900))
    creds = credentials(http, clock, refresh_margin_s=300)
    first = creds.get()
    clock.now += 599
    assert creds.get() is first
    assert len(http.requests) == 1
    clock.now += 1
    assert creds.get() is not first
    assert len(http.requests) == 2


def test_exchange_request_carries_token_models_and_duration() -> None:
    clock = Clock()
    http = FakeTransport(lambda: document(clock.now + 900))
    credentials(http, clock, models=["us.claude-haiku-4-5"], duration_s=1800).get()
    sent = http.requests[0]
    assert sent["method"] == "POST"
    assert sent["url"] == "https://vouch.example.com/v1/credentials/aws"
    assert sent["token"] == TOKEN
    assert sent["body"] == {"models": ["us.claude-haiku-4-5"], "duration_s": 1800}
    assert sent["retry"] is True
    credentials(http, clock).get()
    assert http.requests[1]["body"] is None


def test_credentials_already_inside_the_margin_pause_1_2_4_seconds() -> None:
    clock = Clock()
    expires = clock.now + 900
    http = FakeTransport(lambda: document(expires))  # the broker's cache: same credentials
    creds = credentials(http, clock, refresh_margin_s=899)
    creds.get()
    times: list[float] = []
    while len(times) < 4:
        clock.now += 0.25
        before = len(http.requests)
        creds.get()
        if len(http.requests) > before:
            times.append(clock.now)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert times[0] == pytest.approx(expires - 900 + 1)
    assert gaps == [1.0, 2.0, 4.0]


def test_transient_failure_keeps_valid_credentials_and_backs_off() -> None:
    clock = Clock()
    good = document(clock.now + 900)
    http = FakeTransport(good, NetworkError("down"))
    creds = credentials(http, clock, refresh_margin_s=300)
    first = creds.get()
    clock.now += 700
    assert creds.get() == first
    assert creds.get() == first
    assert len(http.requests) == 2  # the failed refresh waits a pause before trying again
    clock.now += pause_s(0)
    creds.get()
    assert len(http.requests) == 3


def test_retry_after_is_honoured_but_never_past_the_credentials_life() -> None:
    clock = Clock()
    http = FakeTransport(document(clock.now + 900), RateLimited("cap", retry_after=3600))
    creds = credentials(http, clock, refresh_margin_s=300)
    creds.get()
    clock.now += 700
    creds.get()
    clock.now += 100  # 800 s in: 100 s of life left, above the 60 s floor
    creds.get()
    assert len(http.requests) == 2
    clock.now += 41  # past expiry minus 60 s: try again rather than serve dying credentials
    with pytest.raises(RateLimited):
        creds.get()


def test_transient_failure_with_nearly_expired_credentials_raises() -> None:
    clock = Clock()
    http = FakeTransport(document(clock.now + 900), BrokerUnavailable("store down"))
    creds = credentials(http, clock)
    creds.get()
    clock.now += 870
    with pytest.raises(BrokerUnavailable):
        creds.get()


def test_revocation_raises_at_the_next_refresh_even_with_valid_credentials() -> None:
    clock = Clock()
    http = FakeTransport(document(clock.now + 900), TokenRevoked("token revoked (dlg)"))
    creds = credentials(http, clock, refresh_margin_s=300)
    creds.get()
    clock.now += 601
    with pytest.raises(TokenRevoked):
        creds.get()


def test_concurrent_callers_share_one_refresh() -> None:
    clock = Clock()
    gate = threading.Event()

    def slow() -> dict[str, Any]:
        gate.wait(2)
        return document(clock.now + 900)

    http = FakeTransport(slow)
    creds = credentials(http, clock)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(creds.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(http.requests) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_next_refresh_at_never_lands_past_expiry() -> None:
    assert next_refresh_at(100.0, 1000.0, 300, 0) == 700.0
    assert next_refresh_at(100.0, 103.0, 300, 5) == pytest.approx(101.5)
    assert next_refresh_at(100.0, 1000.0, 300, 0, renewed=False) == 101.0  # nothing new
    assert pause_s(30) == 60.0


def test_secrets_stay_out_of_repr_and_documents_round_trip() -> None:
    clock = Clock()
    creds = credentials(FakeTransport(document(clock.now + 900, key="ASIAXYZ")), clock).get()
    assert "secret" not in repr(creds) and "session" not in repr(creds)
    assert creds.process_document() == document(clock.now + 900, key="ASIAXYZ")
    env = creds.environment()
    assert env["AWS_ACCESS_KEY_ID"] == "ASIAXYZ"
    assert env["AWS_CREDENTIAL_EXPIRATION"].endswith("Z")


def test_a_malformed_credential_document_is_an_invalid_response() -> None:
    clock = Clock()
    broken = {k: v for k, v in document(clock.now + 900).items() if k != "SessionToken"}
    with pytest.raises(InvalidResponse, match="missing required field `SessionToken`"):
        credentials(FakeTransport(broken), clock).get()
    with pytest.raises(InvalidResponse, match=r"at `\$.Expiration`"):
        AwsCredentials.from_process_document({**document(clock.now), "Expiration": "soon"})
    naive = AwsCredentials.from_process_document(
        {**document(clock.now), "Expiration": "2027-01-15T08:00:00"}
    )
    assert naive.expiration.tzinfo is UTC  # a time without a zone is UTC, as before


# --- credentials never outlive the token (invariant 12) -----------------------------------------


def ending(clock: Clock, in_s: float) -> str:
    return fake_jwt(
        {"iss": "https://vouch.example.com", "dlg": "dlg_1", "exp": int(clock.now + in_s)}
    )


def test_credentials_are_served_until_the_token_expires_and_never_after() -> None:
    clock = Clock()
    token = ending(clock, 600)  # STS's floor gives 900 s; the token has 600 left
    http = FakeTransport(lambda: document(clock.now + 900))
    creds = AgentCredentials(token=token, transport=http, clock=clock, refresh_margin_s=300)
    first = creds.get()
    assert first.expiration.timestamp() == clock.now + 600  # the token's end, not STS's
    assert first.process_document()["Expiration"] == document(clock.now + 600)["Expiration"]
    clock.now += 599  # nothing newer could outlast the token: no refresh before its end
    assert creds.get() is first
    assert len(http.requests) == 1
    clock.now += 1
    with pytest.raises(TokenExpired, match="the agent token expired at "):
        creds.get()
    assert len(http.requests) == 1  # said locally: the broker is not asked


def test_an_expired_token_is_refused_before_any_exchange() -> None:
    clock = Clock()
    http = FakeTransport(lambda: document(clock.now + 900))
    creds = AgentCredentials(token=ending(clock, -1), transport=http, clock=clock)
    with pytest.raises(TokenExpired):
        creds.refresh()
    assert http.requests == []


def test_a_refresh_near_the_tokens_end_is_cut_to_it() -> None:
    clock = Clock()
    started = clock.now
    http = FakeTransport(lambda: document(clock.now + 900))
    creds = AgentCredentials(
        token=ending(clock, 950), transport=http, clock=clock, refresh_margin_s=300
    )
    assert creds.get().expiration.timestamp() == started + 900  # sooner than the token
    clock.now += 600  # the usual refresh: STS would give until 1,500 s
    assert creds.get().expiration.timestamp() == started + 950
    clock.now += 349
    assert creds.get().expiration.timestamp() == started + 950
    assert len(http.requests) == 2
    clock.now += 1
    with pytest.raises(TokenExpired):
        creds.get()


def test_a_new_token_in_the_file_takes_over_when_the_old_one_ends(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "agent.token"
    path.write_text(ending(clock, 600))
    path.chmod(0o600)
    http = FakeTransport(lambda: document(clock.now + 900))
    creds = AgentCredentials(token_file=path, transport=http, clock=clock)
    creds.get()
    path.write_text(ending(clock, 7200))  # re-delegated meanwhile
    clock.now += 600
    renewed = creds.get()
    assert renewed.expiration.timestamp() == clock.now + 900
    assert len(http.requests) == 2


# Clock skew: the broker's answers carry its Date (a real HTTP server, FakeBroker); the
# SDK's own time source (`clock`) is what the tests move, never the system clock.
SKEW_S = 20 * 60


def test_a_local_clock_20_minutes_ahead_still_makes_one_exchange_for_200_lookups() -> None:
    clock = Clock(time.time() + SKEW_S)
    with FakeBroker() as broker:
        for _ in range(200):
            broker.answer(200, document(time.time() + 900))
        creds = AgentCredentials(server=broker.url, token=TOKEN, clock=clock)
        keys = {creds.get().access_key_id for _ in range(200)}
    assert keys == {"ASIAEXAMPLE"}
    assert len(broker.seen) == 1


def test_a_boto3_session_with_a_local_clock_20_minutes_ahead_gets_credentials() -> None:
    clock = Clock(time.time() + SKEW_S)
    with FakeBroker() as broker:
        for _ in range(5):
            broker.answer(200, document(time.time() + 900))
        source = AgentCredentials(server=broker.url, token=TOKEN, clock=clock)
        session = session_for(source, region_name="us-east-1")
        frozen = session.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
        assert frozen.access_key == "ASIAEXAMPLE"
        clock.now += 60
        assert session.get_credentials().get_frozen_credentials().access_key  # type: ignore[union-attr]
    assert len(broker.seen) == 1


def test_a_local_clock_20_minutes_behind_refreshes_before_the_real_expiry() -> None:
    clock = Clock(time.time() - SKEW_S)
    with FakeBroker() as broker:
        broker.answer(200, document(time.time() + 900))
        broker.answer(200, document(time.time() + 900, key="ASIASECOND"))
        creds = AgentCredentials(server=broker.url, token=TOKEN, clock=clock)
        assert creds.get().access_key_id == "ASIAEXAMPLE"
        clock.now += 599 - 2  # inside the lifetime less the margin (and the Date's rounding)
        assert creds.get().access_key_id == "ASIAEXAMPLE"
        clock.now += 4  # 601 s into a 900 s life: due, though the local clock says 2101 s left
        assert creds.get().access_key_id == "ASIASECOND"
    assert len(broker.seen) == 2


def test_a_hung_refresh_does_not_block_other_callers_while_credentials_are_valid() -> None:
    clock = Clock()
    gate = threading.Event()

    def hung() -> dict[str, Any]:
        gate.wait(10)
        return document(clock.now + 900, key="ASIANEW")

    http = FakeTransport(document(clock.now + 900), hung)
    creds = credentials(http, clock, refresh_margin_s=300)
    old = creds.get()
    clock.now += 601  # due for a refresh, 299 s of life left
    refresher = threading.Thread(target=creds.get)
    refresher.start()
    deadline = time.monotonic() + 5
    while len(http.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    served: list[AwsCredentials] = []
    started = time.monotonic()
    others = [threading.Thread(target=lambda: served.append(creds.get())) for _ in range(4)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(2)
    waited = time.monotonic() - started
    gate.set()
    refresher.join(5)
    assert [c is old for c in served] == [True] * 4, f"callers waited {waited:.1f} s"
    assert waited < 1.0
    assert creds.get().access_key_id == "ASIANEW"
    assert len(http.requests) == 2  # still one refresh in flight at a time


class DatedTransport(FakeTransport):
    """A scripted broker whose Date header is its clock in whole seconds, as HTTP has it."""

    def __init__(self, clock: Clock, *answers: Any) -> None:
        super().__init__(*answers)
        self.clock = clock

    def broker_date(self) -> float:
        return float(int(self.clock.now))


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.95])
def test_credentials_the_broker_hands_back_again_never_make_refreshes_follow_each_other(
    fraction: float,
) -> None:
    """The broker's cache answers a refresh with the credentials already held: nothing new,
    so the next refresh waits a pause, whatever their lifetime looks like through the
    whole-second Date (it was taken as new while it looked longer than the margin: a CI run
    saw 17 exchanges in 3.2 s, each a few tenths of a second after the last)."""
    clock = Clock(1_800_000_000.0 + fraction)
    expires = clock.now + 900.9  # STS's Expiration has a fraction; Date has none
    http = DatedTransport(clock, lambda: document(expires))
    creds = credentials(http, clock, refresh_margin_s=899)
    creds.get()
    times = [clock.now]
    while clock.now < times[0] + 8:
        clock.now += 0.01
        before = len(http.requests)
        creds.get()
        if len(http.requests) > before:
            times.append(clock.now)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert gaps[1:] == sorted(gaps[1:]) and min(gaps[1:]) >= pause_s(0), gaps
    assert len(times) <= 5, gaps
