"""The AWS config file edited as text: one profile changed, everything else kept."""

from __future__ import annotations

import configparser
import stat
from pathlib import Path

import pytest
from vouch_delegate import ConfigError
from vouch_delegate.cli._aws_config import config_path, with_profile, write_profile

pytestmark = pytest.mark.unit

SETTINGS = {
    "credential_process": "/venv/bin/vouch credential aws --token-file /t",
    "region": "us-east-1",
}

EXISTING = """\
# my AWS config: keep this comment
[default]
region = eu-west-1   ; inline comment

[profile vouch]
; an old vouch profile
credential_process = vouch credential aws --token-file agent.jwt
output = json
s3 =
    max_concurrent_requests = 4

[profile other]
region = ap-south-1
"""


def test_an_existing_profile_is_updated_in_place_and_the_rest_kept() -> None:
    updated = with_profile(EXISTING, "vouch", SETTINGS)
    assert updated == EXISTING.replace(
        "credential_process = vouch credential aws --token-file agent.jwt\n",
        f"credential_process = {SETTINGS['credential_process']}\n",
    ).replace(
        "    max_concurrent_requests = 4\n",
        "    max_concurrent_requests = 4\nregion = us-east-1\n",
    )
    assert with_profile(updated, "vouch", SETTINGS) == updated  # idempotent
    parsed = configparser.ConfigParser(inline_comment_prefixes=(";",))
    parsed.read_string(updated)
    assert dict(parsed["profile vouch"]) == {
        **SETTINGS,
        "output": "json",
        "s3": "\nmax_concurrent_requests = 4",
    }
    assert parsed["profile other"]["region"] == "ap-south-1"


def test_a_missing_profile_is_appended_and_a_replaced_key_loses_its_continuation() -> None:
    assert with_profile("[default]\nregion = eu-west-1", "vouch", SETTINGS) == (
        "[default]\nregion = eu-west-1\n\n[profile vouch]\n"
        f"credential_process = {SETTINGS['credential_process']}\nregion = us-east-1\n"
    )
    folded = "[ profile  vouch ]\nregion =\n  us-west-2\nregion = eu-west-1\n"
    assert with_profile(folded, "vouch", {"region": "us-east-1"}) == (
        "[ profile  vouch ]\nregion = us-east-1\n"
    )
    assert with_profile("", "default", {"region": "us-east-1"}) == (
        "[default]\nregion = us-east-1\n"
    )


def test_the_file_is_created_0600_and_names_are_checked(tmp_path: Path) -> None:
    path = config_path({"AWS_CONFIG_FILE": str(tmp_path / "aws" / "config")})
    assert write_profile(path, "vouch", SETTINGS) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert write_profile(path, "vouch", SETTINGS) is False
    path.chmod(0o640)  # an existing file keeps its mode
    write_profile(path, "second", SETTINGS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with pytest.raises(ConfigError, match="profile name 'a b'"):
        write_profile(path, "a b", SETTINGS)
    assert config_path({}) == Path.home() / ".aws" / "config"
