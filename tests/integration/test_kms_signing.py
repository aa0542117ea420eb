"""Signing with an AWS KMS key (moto's KMS as a separate process): the key never leaves KMS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import jwt
import pytest

from broker.keys import kms_key_ring
from broker.settings import load_settings
from broker.tokens import SESSION_TYP, Expectation, mint, verify
from tests.harness.broker import BrokerServer
from tests.harness.services import MotoServer, free_port

pytestmark = pytest.mark.integration


def kms_client(moto_server: MotoServer) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_kms_signed_token_verifies_against_the_kms_public_key(moto_server: MotoServer) -> None:
    kms = kms_client(moto_server)
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    ring = kms_key_ring(kms, key_id)
    now = int(time.time())
    claims = {
        "iss": "https://vouch.example",
        "aud": "https://vouch.example",
        "sub": "a@example.com",
        "iat": now,
        "exp": now + 60,
        "jti": "x",
    }
    token = mint(claims, typ=SESSION_TYP, keys=ring)
    expect = Expectation(typ=SESSION_TYP, issuer=claims["iss"], audience=claims["aud"])
    assert verify(token, expect, keys=ring, now=now)["sub"] == "a@example.com"
    public = jwt.PyJWK(ring.jwks()["keys"][0])  # an independent verifier agrees
    assert jwt.decode(token, public, algorithms=["ES256"], audience=claims["aud"])["jti"] == "x"


def test_kms_key_of_the_wrong_type_is_refused(moto_server: MotoServer) -> None:
    kms = kms_client(moto_server)
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    with pytest.raises(ValueError, match="ECC_NIST_P256"):
        kms_key_ring(kms, key_id)


def test_broker_serves_kms_key_in_jwks(
    moto_server: MotoServer, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kms = kms_client(moto_server)
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    settings = load_settings(
        env={},
        issuer=f"http://localhost:{port}",
        redis_url=redis_url,
        kms_key_id=key_id,
        aws={"endpoint_url": moto_server.url},
    )
    server = BrokerServer(settings).start()
    try:
        keys = httpx.get(f"http://127.0.0.1:{port}/.well-known/jwks.json").json()["keys"]
        assert [k["kid"] for k in keys] == [kms_key_ring(kms, key_id).signer.kid]
    finally:
        server.stop()
