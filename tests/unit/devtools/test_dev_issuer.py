"""`vouch-broker dev --real-aws` takes only an issuer AWS STS can fetch from the internet."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.settings import SettingsError
from vouch_devtools.dev import DevOptions, check_real_aws_issuer

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "issuer",
    [
        "http://localhost:8080",  # the default
        "https://localhost",
        "https://vouch.localhost",
        "https://127.0.0.1",
        "https://[::1]",
        "https://10.1.2.3",
        "https://192.168.1.5",
        "https://169.254.169.254",
        "https://vouch.example.com:8443",  # an IAM OIDC provider URL has no port
        "http://vouch.example.com",
    ],
)
def test_issuers_aws_cannot_fetch_are_refused(issuer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCH_ISSUER", issuer)
    with pytest.raises(SettingsError) as refused:
        check_real_aws_issuer(DevOptions(Path("state"), port=8080))
    (problem,) = refused.value.problems
    assert problem.startswith(f"issuer: --real-aws needs an issuer AWS can fetch, not {issuer}:")
    assert "VOUCH_ISSUER=https://YOUR-HOST" in problem


@pytest.mark.parametrize(
    "issuer", ["https://vouch.example.com", "https://vouch.example.com/tenant", "https://8.8.8.8"]
)
def test_public_https_issuers_pass(issuer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCH_ISSUER", issuer)
    check_real_aws_issuer(DevOptions(Path("state"), port=8080))
