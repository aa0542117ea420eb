"""OIDC discovery, JWKS, health, metrics and the OpenAPI schema."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.broker import BrokerServer

pytestmark = pytest.mark.integration


def test_discovery_document_points_at_the_jwks(broker: BrokerServer) -> None:
    base = f"http://127.0.0.1:{broker.port}"
    config = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert config["issuer"] == broker.url
    assert config["jwks_uri"] == f"{broker.url}/.well-known/jwks.json"
    assert config["id_token_signing_alg_values_supported"] == ["ES256"]
    keys = httpx.get(f"{base}/.well-known/jwks.json").json()["keys"]
    assert {k["kty"] for k in keys} == {"EC"} and len(keys) == 2  # active + next
    assert all(set(k) == {"kty", "crv", "x", "y", "kid", "use", "alg"} for k in keys)


def test_health_metrics_schema_and_headers(broker: BrokerServer) -> None:
    base = f"http://127.0.0.1:{broker.port}"
    health = httpx.get(f"{base}/healthz")
    assert health.json() == {"status": "ok"}
    assert health.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{base}/readyz").json() == {"status": "ready", "aws_cut": "disabled"}
    httpx.post(f"{base}/v1/login/begin", json={"email": 5})
    metrics = httpx.get(f"{base}/metrics").text
    assert 'vouch_http_requests_total{route="/healthz",status="200"} 1.0' in metrics
    assert 'vouch_problems_total{slug="invalid-request"} 1.0' in metrics
    schema = httpx.get(f"{base}/schema/openapi.json").json()
    assert "/v1/credentials/aws" in schema["paths"]
    assert "/v1/delegations/begin" in schema["paths"]
