"""docs/configuration.md is exactly what `broker.config_reference` generates from Settings."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from broker import config_reference
from broker.settings import EXAMPLE_POLICY, Settings

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_committed_reference_matches_the_settings() -> None:
    generated = config_reference.render()
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == generated, (
        "docs/configuration.md is out of date with broker/settings.py; regenerate it with: "
        + config_reference.REGENERATE
    )


def test_every_field_appears_with_its_env_variable_and_docstring() -> None:
    text = config_reference.render()
    rows = {row.name: row for row in config_reference.rows()}
    assert list(rows) == list(Settings.__struct_fields__)
    for name, row in rows.items():
        assert f"| `{name}` | `VOUCH_{name.upper()}` |" in text
        assert row.description
        assert row.description.replace("|", "\\|") in text


def test_types_defaults_and_checks_come_from_the_code() -> None:
    rows = {row.name: row for row in config_reference.rows()}
    assert rows["signing_keys"].type == "str | None"
    assert rows["signing_keys"].default == "unset"
    assert rows["allow_software_keys"].default == "`false`"
    assert rows["session_ttl_s"].default == "`28800` (8 h)"
    assert rows["origins"].default == "`[]` (empty)"
    assert "must be between 1 and 120 seconds" in rows["challenge_ttl_s"].checks
    # The bundled example policy is shown relative to the project, not this checkout's path.
    assert str(EXAMPLE_POLICY) not in config_reference.render()
    assert rows["policy_file"].default.startswith("`policies/examples/org.toml`")


def test_a_field_without_a_docstring_is_an_error() -> None:
    source = "class Settings:\n    documented: int = 1\n    '''Doc.'''\n    bare: int = 2\n"
    with pytest.raises(ValueError, match="bare has no docstring"):
        config_reference.field_docs(source)


def test_field_docs_reads_annotation_and_joins_docstring_lines() -> None:
    source = 'class Settings:\n    x: list[str] = []\n    """Two\n    lines."""\n'
    assert config_reference.field_docs(source) == {"x": ("list[str]", "Two lines.")}


def test_defaults_of_every_kind_render() -> None:
    class Sample(msgspec.Struct):
        a: int | None = None
        b: list[str] = msgspec.field(default_factory=list)
        c: float = 0.5

    rendered = [config_reference._default(f) for f in msgspec.structs.fields(Sample)]
    assert rendered == ["unset", "`[]` (empty)", "`0.5`"]
