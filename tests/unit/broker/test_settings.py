"""Settings: TOML < env < overrides, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_are_local_development() -> None:
    settings = load_settings(env={})
    assert settings.issuer == "http://localhost:8080"
    assert settings.origins == ["http://localhost:8080"]
    assert settings.allow_software_keys is False


def test_env_overrides_toml(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text('issuer = "https://vouch.example.com"\nrp_id = "example.com"\n')
    env = {
        "VOUCH_RP_ID": "vouch.example.com",
        "VOUCH_ORIGINS": "https://a.example, https://b.example",
        "VOUCH_REDIS_TIMEOUT_S": "0.25",
    }
    settings = load_settings(env=env, config_file=config)
    assert settings.issuer == "https://vouch.example.com"
    assert settings.rp_id == "vouch.example.com"
    assert settings.origins == ["https://a.example", "https://b.example"]
    assert settings.redis_timeout_s == 0.25


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text('issuer = "http://vouch.example.com"\nbogus = 1\n')
    env = {
        "VOUCH_SESSION_TTL_S": "forever",
        "VOUCH_CHALLENGE_TTL_S": "600",
        "VOUCH_POLICY_FILE": str(tmp_path / "missing.toml"),
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(env=env, config_file=config)
    problems = caught.value.problems
    assert any("unknown setting 'bogus'" in p for p in problems)
    assert any(
        p.startswith("VOUCH_SESSION_TTL_S / session_ttl_s: Expected `int`") for p in problems
    )
    assert len(problems) == 2  # type errors stop semantic checks: they would only repeat them


def test_semantic_problems_are_all_listed(tmp_path: Path) -> None:
    env = {
        "VOUCH_ISSUER": "http://vouch.example.com",
        "VOUCH_CHALLENGE_TTL_S": "600",
        "VOUCH_POLICY_FILE": str(tmp_path / "missing.toml"),
        "VOUCH_REDIS_URL": "http://x",
        "VOUCH_SIGNING_KEYS": "/k",
        "VOUCH_KMS_KEY_ID": "k",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(env=env)
    text = str(caught.value)
    for expected in (
        "issuer: must be an https URL",
        "challenge_ttl_s: must be between 1 and 120",
        "policy_file: no such file",
        "redis_url: scheme must be",
        "signing_keys and kms_key_id: set one, not both",
    ):
        assert expected in text
