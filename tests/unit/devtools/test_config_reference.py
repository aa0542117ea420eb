"""docs/configuration.md is exactly what `vouch_devtools.config_reference` makes of Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from broker.settings import BOUNDS, EXAMPLE_POLICY, FIELDS, SettingsError, load_settings
from broker.settings import setting_fields as fields_of
from vouch_devtools import config_reference

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_committed_reference_matches_the_settings() -> None:
    generated = config_reference.render()
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == generated, (
        "docs/configuration.md is out of date with broker/settings.py; regenerate it with: "
        + config_reference.REGENERATE
    )


def test_every_field_appears_with_its_env_variable_and_description() -> None:
    text = config_reference.render()
    rows = {row.name: row for row in config_reference.rows()}
    assert list(rows) == [f.key for f in FIELDS]
    assert list(rows)[-7:] == [
        "aws.region",
        "aws.endpoint_url",
        "aws.sts_timeout_s",
        "aws.sts_assertion_ttl_s",
        "aws.revocation_policy",
        "aws.cut_sessions",
        "aws.invocation_log_group",
    ]
    assert rows["aws.region"].env == "VOUCH_AWS_REGION"
    assert rows["aws.sts_timeout_s"].env == "VOUCH_AWS_STS_TIMEOUT_S"
    for name, row in rows.items():
        assert f"| `{name}` | `{row.env}` |" in text
        assert row.description
        assert row.description.replace("|", "\\|") in text


def test_types_defaults_and_checks_come_from_the_code() -> None:
    rows = {row.name: row for row in config_reference.rows()}
    assert rows["signing_keys"].type == "str | None"
    assert rows["signing_keys"].default == "unset"
    assert rows["signing_keys"].checks == ("set one, not both (signing_keys, kms_key_id)",)
    assert rows["allow_software_keys"].default == "`false`"
    assert rows["session_ttl_s"].default == "`28800` (8 h)"
    assert rows["origins"].default == "`[]` (empty)"
    assert rows["origins"].type == "list[str]"
    assert rows["challenge_ttl_s"].checks == ("must be between 1 and 120 seconds",)
    assert rows["aws.endpoint_url"].type == "str | None"
    assert rows["aws.sts_timeout_s"].default == "`2.5`"
    assert rows["aws.sts_timeout_s"].checks == ("must be between 0.05 and 30 seconds",)
    assert rows["issuer"].checks == (
        "must be an https URL (plain http only for localhost)",
        "must be a bare URL without query or fragment",
    )
    # The bundled example policy is shown relative to the project, not this checkout's path.
    assert str(EXAMPLE_POLICY) not in config_reference.render()
    assert rows["policy_file"].default.startswith("`policies/examples/org.toml`")


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_each_documented_range_is_the_start_check(key: str) -> None:
    """Just past a documented range, start fails with the documented rule, word for word."""
    rule = {row.name: row for row in config_reference.rows()}[key].checks[0]
    low, high = BOUNDS[key]
    table, _, leaf = key.rpartition(".")
    for outside in (low - 1 if isinstance(low, int) else low / 2, high + 1):
        override = {table: {leaf: outside}} if table else {leaf: outside}
        with pytest.raises(SettingsError) as caught:
            load_settings(env={}, **override)
        assert caught.value.problems == [f"{key}: {rule}"]


def test_the_old_spellings_are_listed_with_their_new_names() -> None:
    text = config_reference.render()
    assert "| `sts_timeout_s` | `VOUCH_STS_TIMEOUT_S` | `aws.sts_timeout_s`, " in text
    assert "| `aws_region` | `VOUCH_AWS_REGION` (unchanged) | `aws.region`, " in text


def test_a_field_without_a_description_is_an_error() -> None:
    class Sample(msgspec.Struct):
        documented: Annotated[int, Meta(description="Doc.")] = 1
        bare: int = 2

    with pytest.raises(ValueError, match=r"setting bare has no Meta\(description=\.\.\.\)"):
        config_reference.rows(fields_of(Sample))


def test_type_names_read_as_python() -> None:
    assert config_reference.type_name(int) == "int"
    assert config_reference.type_name(str | None) == "str | None"
    assert config_reference.type_name(list[str]) == "list[str]"
    assert config_reference.type_name(dict[str, float]) == "dict[str, float]"
    with pytest.raises(TypeError, match="no reference spelling"):
        config_reference.type_name("int")


def test_defaults_of_every_kind_render() -> None:
    class Sample(msgspec.Struct):
        a: int | None = None
        b: list[str] = msgspec.field(default_factory=list)
        c: float = 0.5
        d_s: int = 7200
        e: str = "x"

    rendered = [config_reference._default(f) for f in fields_of(Sample)]
    assert rendered == ["unset", "`[]` (empty)", "`0.5`", "`7200` (2 h)", '`"x"`']
