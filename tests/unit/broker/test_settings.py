"""Settings: TOML < env < overrides, every problem reported at once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from broker.settings import (
    BOUNDS,
    FIELDS,
    AwsSettings,
    SettingsError,
    load_settings,
    log_deprecations,
    read_settings,
    setting_fields,
)

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
    # A type error in one setting hides no range, URL or file error in the others.
    assert caught.value.problems == [
        f"{config}: unknown setting 'bogus'",
        "VOUCH_SESSION_TTL_S / session_ttl_s: must be a whole number of seconds or a duration "
        "like 8h, 90m or 1h30m, not 'forever'",
        "issuer: must be an https URL (plain http only for localhost)",
        "challenge_ttl_s: must be between 1 and 120 seconds",
        f"policy_file: no such file {tmp_path / 'missing.toml'}",
    ]


@pytest.mark.parametrize(
    ("written", "seconds"),
    [('"8h"', 8 * 3600), ('"90m"', 5400), ('"1h30m"', 5400), ('"1d"', 86400), ("3600", 3600)],
)
def test_durations_are_read_as_the_org_policy_reads_them(
    tmp_path: Path, written: str, seconds: int
) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text(f"session_ttl_s = {written}\n[aws]\nsts_assertion_ttl_s = {written}\n")
    # Every one is over the assertion's 300 s: read as a duration, then checked for range.
    with pytest.raises(SettingsError) as caught:
        load_settings(env={}, config_file=config)
    assert caught.value.problems == ["aws.sts_assertion_ttl_s: must be between 30 and 300 seconds"]
    env = {"VOUCH_AWS_STS_ASSERTION_TTL_S": "5m", "VOUCH_AWS_STS_TIMEOUT_S": "2s"}
    settings = load_settings(env=env, config_file=config)
    assert settings.session_ttl_s == seconds
    assert (settings.aws.sts_assertion_ttl_s, settings.aws.sts_timeout_s) == (300, 2)
    assert load_settings(env={"VOUCH_REDIS_TIMEOUT_S": "0.25"}).redis_timeout_s == 0.25


def test_a_value_of_the_wrong_type_is_named_with_what_it_must_be(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text("aaguids = [1]\nsession_ttl_s = 8.5\n")
    env = {"VOUCH_ALLOW_SOFTWARE_KEYS": "maybe", "VOUCH_KEY_REFRESH_S": "often"}
    with pytest.raises(SettingsError) as caught:
        load_settings(env=env, config_file=config)
    assert caught.value.problems == [
        "VOUCH_AAGUIDS / aaguids: aaguids[0] must be a string, not a whole number",
        "VOUCH_SESSION_TTL_S / session_ttl_s: must be a whole number of seconds or a duration "
        "like 8h, 90m or 1h30m, not 8.5",
        "VOUCH_KEY_REFRESH_S / key_refresh_s: must be a number of seconds or a duration like "
        "8h, 90m or 1h30m, not 'often'",
        "VOUCH_ALLOW_SOFTWARE_KEYS / allow_software_keys: must be true or false, not 'maybe'",
    ]


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


def test_aws_settings_are_the_aws_table(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text(
        'issuer = "https://vouch.example.com"\n'
        "[aws]\n"
        'region = "eu-west-1"\n'
        'endpoint_url = "http://127.0.0.1:5000"\n'
        "sts_timeout_s = 1.5\n"
        "sts_assertion_ttl_s = 120\n"
    )
    loaded = read_settings(env={}, config_file=config)
    assert loaded.settings.aws == AwsSettings(
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:5000",
        sts_timeout_s=1.5,
        sts_assertion_ttl_s=120,
    )
    assert loaded.deprecations == ()


def test_aws_defaults() -> None:
    assert load_settings(env={}).aws == AwsSettings(
        region="us-east-1", endpoint_url=None, sts_timeout_s=2.5, sts_assertion_ttl_s=300
    )


def test_aws_variables_override_the_table_key_by_key(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text('[aws]\nregion = "eu-west-1"\nsts_timeout_s = 1.5\n')
    env = {
        "VOUCH_AWS_REGION": "ap-southeast-2",
        "VOUCH_AWS_ENDPOINT_URL": "http://127.0.0.1:5001",
        "VOUCH_AWS_STS_ASSERTION_TTL_S": "60",
    }
    loaded = read_settings(env=env, config_file=config)
    assert loaded.settings.aws == AwsSettings(
        region="ap-southeast-2",
        endpoint_url="http://127.0.0.1:5001",
        sts_timeout_s=1.5,  # from the file: no variable for it
        sts_assertion_ttl_s=60,
    )
    assert loaded.deprecations == ()
    env = {"VOUCH_AWS_STS_TIMEOUT_S": "4"}
    assert load_settings(env=env, config_file=config).aws.sts_timeout_s == 4.0


def test_the_old_top_level_keys_are_read_with_a_notice_each(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text(
        'aws_region = "eu-west-1"\n'
        'aws_endpoint_url = "http://127.0.0.1:5000"\n'
        "sts_timeout_s = 1.5\n"
        "sts_assertion_ttl_s = 120\n"
    )
    loaded = read_settings(env={}, config_file=config)
    assert loaded.settings.aws == AwsSettings(
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:5000",
        sts_timeout_s=1.5,
        sts_assertion_ttl_s=120,
    )
    assert loaded.deprecations == (
        f"{config}: top-level 'aws_region' is deprecated: write it as 'region' in the [aws] table",
        f"{config}: top-level 'aws_endpoint_url' is deprecated: write it as 'endpoint_url' in "
        "the [aws] table",
        f"{config}: top-level 'sts_timeout_s' is deprecated: write it as 'sts_timeout_s' in "
        "the [aws] table",
        f"{config}: top-level 'sts_assertion_ttl_s' is deprecated: write it as "
        "'sts_assertion_ttl_s' in the [aws] table",
    )


def test_the_old_variables_are_read_with_a_notice_each() -> None:
    env = {"VOUCH_STS_TIMEOUT_S": "1.5", "VOUCH_STS_ASSERTION_TTL_S": "120"}
    loaded = read_settings(env=env)
    assert (loaded.settings.aws.sts_timeout_s, loaded.settings.aws.sts_assertion_ttl_s) == (
        1.5,
        120,
    )
    assert loaded.deprecations == (
        "VOUCH_STS_TIMEOUT_S is deprecated: set VOUCH_AWS_STS_TIMEOUT_S instead",
        "VOUCH_STS_ASSERTION_TTL_S is deprecated: set VOUCH_AWS_STS_ASSERTION_TTL_S instead",
    )
    # load_settings reads the same, notices aside (uvicorn workers: the parent logs them).
    assert load_settings(env=env) == loaded.settings


def test_old_and_new_spelling_in_one_place_are_errors_all_reported_at_once(
    tmp_path: Path,
) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text(
        'aws_region = "eu-west-1"\nsts_timeout_s = 1.5\nbogus = 1\n'
        '[aws]\nregion = "eu-west-2"\nsts_timeout_s = 2.0\n'
    )
    env = {
        "VOUCH_STS_ASSERTION_TTL_S": "120",
        "VOUCH_AWS_STS_ASSERTION_TTL_S": "60",
        "VOUCH_STS_TIMEOUT_S": "3",  # the file has both; this one is only deprecated
    }
    with pytest.raises(SettingsError) as caught:
        read_settings(env=env, config_file=config)
    assert caught.value.problems == [
        f"{config}: unknown setting 'bogus'",
        f"{config}: top-level 'aws_region' (deprecated) and 'region' in [aws] are both given; "
        "remove 'aws_region'",
        f"{config}: top-level 'sts_timeout_s' (deprecated) and 'sts_timeout_s' in [aws] are "
        "both given; remove 'sts_timeout_s'",
        "VOUCH_STS_ASSERTION_TTL_S (deprecated) and VOUCH_AWS_STS_ASSERTION_TTL_S are both "
        "set; unset VOUCH_STS_ASSERTION_TTL_S",
    ]
    assert caught.value.deprecations == (
        "VOUCH_STS_TIMEOUT_S is deprecated: set VOUCH_AWS_STS_TIMEOUT_S instead",
    )


def test_a_variable_overrides_the_file_whichever_spelling_each_uses(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text("sts_timeout_s = 1.5\n[aws]\nsts_assertion_ttl_s = 120\n")
    env = {"VOUCH_AWS_STS_TIMEOUT_S": "4", "VOUCH_STS_ASSERTION_TTL_S": "60"}
    loaded = read_settings(env=env, config_file=config)
    assert (loaded.settings.aws.sts_timeout_s, loaded.settings.aws.sts_assertion_ttl_s) == (
        4.0,
        60,
    )
    assert loaded.deprecations == (
        f"{config}: top-level 'sts_timeout_s' is deprecated: write it as 'sts_timeout_s' in "
        "the [aws] table",
        "VOUCH_STS_ASSERTION_TTL_S is deprecated: set VOUCH_AWS_STS_ASSERTION_TTL_S instead",
    )


def test_problems_name_the_new_spelling_and_list_the_notices(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text("sts_assertion_ttl_s = 3600\n")
    env = {"VOUCH_STS_TIMEOUT_S": "soon"}
    with pytest.raises(SettingsError) as caught:
        read_settings(env=env, config_file=config)
    soon = (
        "VOUCH_AWS_STS_TIMEOUT_S / aws.sts_timeout_s: must be a number of seconds or a "
        "duration like 8h, 90m or 1h30m, not 'soon'"
    )
    # The type error does not hide the other setting's range error.
    range_problem = "aws.sts_assertion_ttl_s: must be between 30 and 300 seconds"
    assert caught.value.problems == [soon, range_problem]
    assert str(caught.value) == "\n".join(
        [
            "invalid configuration:",
            f"  - {soon}",
            f"  - {range_problem}",
            "deprecated settings in use:",
            f"  - {config}: top-level 'sts_assertion_ttl_s' is deprecated: write it as "
            "'sts_assertion_ttl_s' in the [aws] table",
            "  - VOUCH_STS_TIMEOUT_S is deprecated: set VOUCH_AWS_STS_TIMEOUT_S instead",
        ]
    )
    with pytest.raises(SettingsError) as caught:
        read_settings(env={}, config_file=config)
    assert caught.value.problems == ["aws.sts_assertion_ttl_s: must be between 30 and 300 seconds"]


def test_the_aws_table_admits_only_its_keys(tmp_path: Path) -> None:
    config = tmp_path / "vouch.toml"
    config.write_text('region = "eu-west-1"\n[aws]\nrole_arn = "arn:aws:iam::1:role/x"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(env={}, config_file=config)
    assert caught.value.problems == [
        f"{config}: unknown setting 'region'",
        f"{config}: unknown setting 'aws.role_arn'",
    ]
    config.write_text('aws = "eu-west-1"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(env={}, config_file=config)
    assert caught.value.problems == [f"{config}: 'aws' must be a table ([aws])"]


def test_overrides_use_the_toml_layout() -> None:
    settings = load_settings(env={}, aws={"endpoint_url": "http://127.0.0.1:5000"})
    assert settings.aws.endpoint_url == "http://127.0.0.1:5000"
    assert settings.aws.region == "us-east-1"
    with pytest.raises(TypeError, match=r"^not settings: aws\.role, aws_endpoint_url$"):
        load_settings(env={}, aws_endpoint_url="http://x", aws={"role": "r"})


def test_every_setting_has_its_variable() -> None:
    assert {f.key: f.env for f in FIELDS if f.path[0] == "aws"} == {
        "aws.region": "VOUCH_AWS_REGION",
        "aws.endpoint_url": "VOUCH_AWS_ENDPOINT_URL",
        "aws.sts_timeout_s": "VOUCH_AWS_STS_TIMEOUT_S",
        "aws.sts_assertion_ttl_s": "VOUCH_AWS_STS_ASSERTION_TTL_S",
        "aws.revocation_policy": "VOUCH_AWS_REVOCATION_POLICY",
        "aws.cut_sessions": "VOUCH_AWS_CUT_SESSIONS",
        "aws.invocation_log_group": "VOUCH_AWS_INVOCATION_LOG_GROUP",
    }
    assert all(f.env == "VOUCH_" + f.key.upper() for f in FIELDS if len(f.path) == 1)


def test_ranges_come_from_the_field_metadata() -> None:
    assert BOUNDS == {
        "redis_timeout_s": (0.01, 30),
        "key_refresh_s": (0.1, 60),
        "session_ttl_s": (60, 24 * 3600),
        "challenge_ttl_s": (1, 120),
        "request_ttl_s": (1, 3600),
        "request_max_pending_per_person": (1, 100),
        "request_max_pending_per_address": (1, 1000),
        "clock_leeway_s": (0, 300),
        "dpop_proof_max_age_s": (5, 600),
        "verified_token_cache_entries": (0, 1_000_000),
        "http_header_timeout_s": (0.5, 300),
        "audit_exchange_interval_s": (0, 3600),
        "spend_poll_interval_s": (0.2, 600),
        "aws.sts_timeout_s": (0.05, 30),
        "aws.sts_assertion_ttl_s": (30, 300),
    }

    class HalfRange(msgspec.Struct):
        n: Annotated[int, Meta(ge=1, description="Only a floor.")] = 1

    with pytest.raises(TypeError, match=r"n: declare a range as Meta\(ge=\.\.\., le=\.\.\.\)"):
        setting_fields(HalfRange)


def test_deprecations_are_logged_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    notices = read_settings(env={"VOUCH_STS_TIMEOUT_S": "1.5"}).deprecations
    with caplog.at_level(logging.WARNING, logger="vouch.settings"):
        log_deprecations(notices)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "vouch.settings",
            "WARNING",
            "VOUCH_STS_TIMEOUT_S is deprecated: set VOUCH_AWS_STS_TIMEOUT_S instead",
        )
    ]


def test_a_prices_file_that_is_not_there_is_a_settings_problem(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"VOUCH_PRICES_FILE": str(tmp_path / "prices.toml")})
    assert f"prices_file: no such file {tmp_path / 'prices.toml'}" in caught.value.problems
