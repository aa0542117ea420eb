"""A stolen signing key: `vouch-broker keys revoke` / `keys replace-all` cut it off at once.

The thief copies the key directory (the active and the next key). Before the commands
existed, `keys rotate` was the only tool: it made the stolen next key active and kept the
stolen active key published for two days. These tests run the real CLI against two
replicas (one in this process, one `vouch-broker serve` process) sharing Redis and keys.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from broker.agent_token import Actor, mint_agent_token
from broker.authorize import Principal
from broker.errors import StoreUnavailable
from broker.keys import (
    KeyRing,
    LocalSigner,
    generate_private_key,
    load_key_ring,
    read_key_dir,
    write_key,
)
from broker.providers.aws_sts import AwsStsProvider
from broker.session import mint_session
from broker.settings import Settings, load_settings
from broker.signing_keys import SigningKeys, revoke_signing_keys
from broker.store import connect
from policies.identity import agent_sub
from tests.harness.broker import BrokerServer, broker_settings, make_invite
from tests.harness.people import Human, person_at
from tests.harness.processes import BrokerProcess
from tests.harness.services import MotoServer, RedisServer, free_port, wait_for
from tests.harness.sts_gate import StsGate

pytestmark = pytest.mark.integration

HAIKU = "us.claude-haiku-4-5"
REVOKED = (401, "token-revoked", "signing-key")
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def replica(broker: BrokerServer, tmp_path: Path) -> Iterator[BrokerProcess]:
    """A second broker, a separate `vouch-broker serve` process sharing Redis and keys."""
    process = BrokerProcess(broker.settings, tmp_path / "replica.log").start()
    yield process
    process.stop()


def vouch_broker(
    settings: Settings, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`vouch-broker ARGS` run on the server host, configured like the replicas."""
    env = BrokerProcess(settings, Path(os.devnull), extra_env=extra_env).env()
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def steal(directory: Path) -> dict[str, KeyRing]:
    """What the thief copied: a signing ring for every private key, by state."""
    return {k.state: KeyRing(LocalSigner(k.private_key, k.kid)) for k in read_key_dir(directory)}


def kids_by_state(directory: Path) -> dict[str, str]:
    return {k.state: k.kid for k in read_key_dir(directory)}


def segment(token: str, index: int) -> dict[str, Any]:
    """A token's header (0) or claims (1), unverified."""
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def header_kid(token: str) -> str:
    return str(segment(token, 0)["kid"])


def forge_session(ring: KeyRing, issuer: str, email: str) -> str:
    now = int(time.time())
    return mint_session(
        email=email,
        cid="forged",
        user_verified=True,
        issuer=issuer,
        ttl_s=3600,
        now=now,
        keys=ring,
    )[0]


def forge_agent_token(ring: KeyRing, issuer: str, email: str, models: list[str]) -> str:
    return mint_agent_token(
        agent="thief",
        actor=Actor(sub=email, cid="forged", amr=("hwk", "uv")),
        dlg_id="dlg_forged",
        models=tuple(models),
        ttl_s=3600,
        max_sts_s=None,
        rate=None,
        issuer=issuer,
        now=int(time.time()),
        keys=ring,
    )[0]


def forge_sts_call(broker: BrokerServer, gate: StsGate, ring: KeyRing, email: str) -> str:
    """AssumeRoleWithWebIdentity straight at STS with an assertion the thief signed, no
    session policy (the role's whole permissions); the access key id it got."""
    provider = cast(AwsStsProvider, broker.app.state.services.exchange.provider.inner)
    principal = Principal(
        id="dlg_forged",
        sub=agent_sub("thief", email),
        email=email,
        agent="thief",
        key="forged",
        models=(HAIKU,),
        max_duration_s=None,
        expires_at=int(time.time()) + 3600,
    )
    assertion = dataclasses.replace(provider, keys=ring).assertion(principal)
    sts = boto3.client("sts", endpoint_url=gate.url, region_name="us-east-1", **_fake_aws())
    answer = sts.assume_role_with_web_identity(
        RoleArn=provider.role_arn, RoleSessionName="thief", WebIdentityToken=assertion
    )
    return answer["Credentials"]["AccessKeyId"]


def _fake_aws() -> dict[str, Any]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _answer(response: httpx.Response) -> tuple[int, str, str]:
    if response.status_code == 200:
        return 200, "", ""
    body = response.json()
    return response.status_code, str(body["type"]).rsplit(":", 1)[-1], str(body.get("handle"))


def session_answer(base_url: str, token: str) -> tuple[int, str, str]:
    """What a session-authenticated call (list my delegations) answers."""
    return _answer(
        httpx.get(
            f"{base_url}/v1/delegations", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    )


def exchange_answer(base_url: str, token: str) -> tuple[int, str, str]:
    return _answer(
        httpx.post(
            f"{base_url}/v1/credentials/aws",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    )


def jwks_kids(base_url: str) -> set[str]:
    answer = httpx.get(f"{base_url}/.well-known/jwks.json", timeout=10)
    assert answer.status_code == 200, answer.text
    return {str(k["kid"]) for k in answer.json()["keys"]}


def local(broker: BrokerServer) -> str:
    return f"http://127.0.0.1:{broker.port}"


def test_replace_all_refuses_every_token_the_stolen_keys_signed_on_every_replica_at_once(
    broker: BrokerServer,
    replica: BrokerProcess,
    human_factory: Callable[..., Human],
    sts_gate: StsGate,
) -> None:
    alice = human_factory("alice@example.com")
    assert alice.session is not None
    agent_token = alice.delegate("researcher", [HAIKU]).token
    key_dir = Path(str(broker.settings.signing_keys))
    loot = steal(key_dir)
    stolen = {ring.signer.kid for ring in loot.values()}
    issuer = broker.settings.issuer
    # `keys rotate` would make the stolen next key the signer: forge with both keys.
    sessions = [alice.session, forge_session(loot["next"], issuer, alice.email)]
    agent_tokens = [
        agent_token,
        forge_agent_token(loot["active"], issuer, alice.email, segment(agent_token, 1)["models"]),
    ]
    replicas = [local(broker), replica.base_url]
    for base in replicas:  # the theft works: forgeries pass like the real tokens
        assert [session_answer(base, t)[0] for t in sessions] == [200, 200]
        assert [exchange_answer(base, t) for t in agent_tokens] == [(200, "", "")] * 2
    assert forge_sts_call(broker, sts_gate, loot["next"], alice.email)  # STS takes it too

    done = vouch_broker(broker.settings, "keys", "replace-all")
    assert done.returncode == 0, done.stdout + done.stderr

    for base in replicas:  # right after the command, with no restart and no wait
        assert stolen.isdisjoint(jwks_kids(base)), base
        assert [session_answer(base, t) for t in sessions] == [REVOKED, REVOKED], base
        assert [exchange_answer(base, t) for t in agent_tokens] == [REVOKED, REVOKED], base
    fresh = kids_by_state(key_dir)
    assert set(fresh) == {"active", "next"}
    assert stolen.isdisjoint(fresh.values())
    for base in replicas:  # each replica re-reads the key directory on its own
        wait_for(lambda b=base: jwks_kids(b) == set(fresh.values()), 10, f"new keys at {base}")
        # The stolen keys' files are gone now, and their tokens are still *revoked*.
        assert [session_answer(base, t) for t in sessions] == [REVOKED, REVOKED], base
        assert [exchange_answer(base, t) for t in agent_tokens] == [REVOKED, REVOKED], base

    # People sign in again and re-delegate; the new tokens work on both replicas.
    alice.login()
    assert header_kid(alice.session) == fresh["active"]
    new_token = alice.delegate("researcher", [HAIKU]).token
    assert header_kid(new_token) == fresh["active"]
    for base in replicas:
        assert session_answer(base, alice.session)[0] == 200
        assert exchange_answer(base, new_token)[0] == 200
    # STS fetched the JWKS again for the new key: an assertion forged with a stolen key now
    # names a key the issuer no longer publishes.
    with pytest.raises(ClientError) as refused:
        forge_sts_call(broker, sts_gate, loot["active"], alice.email)
    assert refused.value.response["Error"]["Code"] == "InvalidIdentityToken"
    assert "Couldn't retrieve verification key" in refused.value.response["Error"]["Message"]


def test_revoking_the_stolen_next_key_cuts_it_off_and_keeps_the_active_key_serving(
    broker: BrokerServer, replica: BrokerProcess, human_factory: Callable[..., Human]
) -> None:
    alice = human_factory("alice@example.com")
    assert alice.session is not None
    agent_token = alice.delegate("researcher", [HAIKU]).token
    key_dir = Path(str(broker.settings.signing_keys))
    before = kids_by_state(key_dir)
    forged = forge_session(steal(key_dir)["next"], broker.settings.issuer, alice.email)
    replicas = [local(broker), replica.base_url]
    assert [session_answer(base, forged)[0] for base in replicas] == [200, 200]

    done = vouch_broker(broker.settings, "keys", "revoke", before["next"])
    assert done.returncode == 0, done.stdout + done.stderr

    for base in replicas:
        assert before["next"] not in jwks_kids(base)
        assert session_answer(base, forged) == REVOKED
        assert session_answer(base, alice.session)[0] == 200  # signed by the active key
        assert exchange_answer(base, agent_token)[0] == 200
    after = kids_by_state(key_dir)
    assert after["active"] == before["active"]
    assert after["next"] != before["next"]  # a fresh next key, published from now on
    for base in replicas:
        wait_for(lambda b=base: after["next"] in jwks_kids(b), 10, f"new next key at {base}")


def test_revoking_a_kms_key_refuses_its_tokens_and_stops_signing_on_every_replica(
    moto_server: MotoServer, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kms = boto3.client("kms", endpoint_url=moto_server.url, region_name="us-east-1", **_fake_aws())
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    settings = load_settings(
        env={},
        issuer=f"http://localhost:{port}",
        redis_url=redis_url,
        kms_key_id=key_id,
        allow_software_keys=True,
        redis_timeout_s=0.5,
        aws={"endpoint_url": moto_server.url},
    )
    kms_env = {**FAKE_AWS, "VOUCH_KMS_KEY_ID": key_id}
    server = BrokerServer(settings).start()
    replica = BrokerProcess(settings, tmp_path / "replica.log", extra_env=kms_env).start()
    try:
        alice = person_at(server, "alice@example.com", tmp_path / "alice.key.json")
        alice.enroll(make_invite(settings, alice.email))
        session = alice.login()
        replicas = [local(server), replica.base_url]
        (kid,) = jwks_kids(local(server))
        assert [session_answer(base, session)[0] for base in replicas] == [200, 200]

        done = vouch_broker(settings, "keys", "revoke", kid, extra_env=kms_env)
        assert done.returncode == 0, done.stdout + done.stderr

        for base in replicas:
            assert jwks_kids(base) == set()
            assert session_answer(base, session) == REVOKED
        # No replica signs with the revoked key again: signing in waits for a new KMS key.
        for base in replicas:
            at = Human(base, server.url, alice.email, tmp_path / "alice.key.json")
            wait_for(lambda h=at: login_answer(h) == (503, "unavailable", "None"), 10, base)
    finally:
        replica.stop()
        server.stop()


def login_answer(human: Human) -> tuple[int, str, str]:
    begin = human.post("/v1/login/begin", {"email": human.email})
    assert begin.status_code == 200, begin.text
    ceremony = begin.json()
    return _answer(
        human.post(
            "/v1/login/complete",
            {
                "challenge_id": ceremony["challenge_id"],
                "credential": human.sign_assertion(ceremony["options"]),
            },
        )
    )


def test_key_revocation_changes_nothing_when_redis_cannot_record_it(tmp_path: Path) -> None:
    settings = broker_settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")  # nobody there
    key_dir = Path(str(settings.signing_keys))
    before = sorted(p.name for p in key_dir.iterdir())
    for args in (("replace-all",), ("revoke", kids_by_state(key_dir)["next"])):
        done = vouch_broker(settings, "keys", *args)
        assert done.returncode == 4, done.stdout + done.stderr  # 4: Redis unreachable
        assert "state store unavailable while revoking signing keys" in done.stderr
        assert sorted(p.name for p in key_dir.iterdir()) == before


def test_a_replica_keeps_revocations_through_a_redis_outage_and_its_keys_through_a_half_made_dir(
    aof_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_dir = Path(str(broker_settings(tmp_path, aof_redis.url).signing_keys))
    kids = kids_by_state(key_dir)
    caplog.set_level(logging.INFO, logger="vouch.keys")

    async def scenario() -> None:
        redis = connect(aof_redis.url, timeout_s=0.5)
        ring = load_key_ring(key_dir)
        keys = SigningKeys(ring, redis, directory=key_dir, interval_s=1)
        try:
            await revoke_signing_keys(
                redis, [kids["next"]], actor="test", replicas=0, wait_ms=0, audit_max_len=100
            )
            await keys.refresh()
            assert (ring.revoked, set(ring.public_keys)) == ({kids["next"]}, {kids["active"]})
            aof_redis.stop()
            with pytest.raises(StoreUnavailable):
                await keys.check_revoked()
            await keys.refresh()
            await keys.refresh()
            # Mid `replace-all`: the old active key is gone, no new one yet. The replica keeps
            # what it had; its files are read again once they are whole, and the key revoked
            # before the outage stays out though its file is still there.
            next(key_dir.glob("*.active.pem")).unlink()
            await keys.refresh()
            await keys.refresh()
            assert ring.signer.kid == kids["active"]
            fresh = write_key(key_dir, generate_private_key(), "active").name.split(".")[0]
            await keys.refresh()
            assert ring.signer.kid == fresh
            assert (ring.revoked, set(ring.public_keys)) == ({kids["next"]}, {fresh})
        finally:
            await redis.aclose()

    asyncio.run(scenario())
    down = "state store unavailable while checking signing keys; nothing was changed or issued"
    half = f"keeping the previous keys: {key_dir}: need exactly one *.active.pem key, found 0"
    problems = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [p.split(" (run")[0] for p in problems] == [  # each problem once, not per refresh
        f"signing key {kids['next']} revoked: no longer verified, published or used",
        f"signing keys: {down}",
        f"signing keys: {half}",  # logged the second time in a row, not at the first
    ]
