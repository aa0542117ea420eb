"""The configuration reference (docs/configuration.md), generated from `broker.settings`.

Every row comes from `broker.settings.FIELDS`: names, types and defaults from the Structs,
descriptions, ranges and start checks from each field's `msgspec.Meta`, the very metadata
the loader enforces; old spellings from `RENAMED`. The page cannot drift from the code.
`make docs` regenerates it; a unit test fails when the committed page differs.
"""

from __future__ import annotations

import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from broker import settings as settings_module
from broker.settings import FIELDS, RENAMED, SettingField

REGENERATE = "uv run python -m vouch_devtools.config_reference > docs/configuration.md"
_PROJECT_ROOT = Path(settings_module.__file__).resolve().parent.parent


@dataclass(frozen=True)
class FieldDoc:
    """One row of the reference."""

    name: str
    env: str
    type: str
    default: str
    description: str
    checks: tuple[str, ...]
    duration: bool = False
    """Seconds, also read from a duration string ("8h")."""


def rows(fields: tuple[SettingField, ...] = FIELDS) -> list[FieldDoc]:
    """One row per setting, in definition order.

    Raises:
        ValueError: a field without a description (the reference would have a hole).
    """
    out = []
    for field in fields:
        if not field.description:
            raise ValueError(f"setting {field.key} has no Meta(description=...)")
        out.append(
            FieldDoc(
                name=field.key,
                env=field.env,
                type=type_name(field.type),
                default=_default(field),
                description=field.description,
                checks=field.rules,
                duration=field.duration,
            )
        )
    return out


def type_name(hint: object) -> str:
    """How a setting's type reads in Python: `int`, `str | None`, `list[str]`."""
    if isinstance(hint, types.UnionType):
        return " | ".join(type_name(arg) for arg in typing.get_args(hint))
    if isinstance(hint, types.GenericAlias):
        args = ", ".join(type_name(arg) for arg in typing.get_args(hint))
        return f"{type_name(typing.get_origin(hint))}[{args}]"
    if hint is type(None):
        return "None"
    if isinstance(hint, type):
        return hint.__name__
    raise TypeError(f"no reference spelling for the type {hint!r}")


def render() -> str:
    """The whole Markdown page."""
    lines = [
        _INTRO.format(regenerate=REGENERATE).strip(),
        "",
        *_table(rows()),
        "",
        _RENAMED_INTRO.strip(),
        "",
        *_renamed_table(),
        "",
        _OUTRO.strip(),
    ]
    return "\n".join(lines) + "\n"


def _table(fields: list[FieldDoc]) -> list[str]:
    lines = [
        "| TOML key | Environment variable | Type | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for f in fields:
        text = f.description
        if f.checks:
            text += " Checked at start: " + "; ".join(f.checks) + "."
        cells = (f"`{f.name}`", f"`{f.env}`", _type_cell(f), f.default, text)
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return lines


def _renamed_table() -> list[str]:
    by_key = {f.key: f for f in FIELDS}
    lines = [
        "| Old TOML key (top level) | Old environment variable | Now |",
        "|---|---|---|",
    ]
    for r in RENAMED:
        new = by_key[r.new_key]
        old_env = f"`{r.old_env}`" if r.old_env else f"`{new.env}` (unchanged)"
        lines.append(f"| `{r.old_key}` | {old_env} | `{new.key}`, `{new.env}` |")
    return lines


def _type_cell(f: FieldDoc) -> str:
    if f.type.startswith("list["):
        return f"`{f.type}` (env: comma-separated)"
    if f.duration:
        return f"`{f.type}` (seconds or a duration)"
    return f"`{f.type}`"


def _default(field: SettingField) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return _default_text(value)
    if isinstance(value, int) and field.path[-1].endswith("_s") and value >= 3600:
        return f"`{value}` ({value / 3600:g} h)"
    return f"`{value!r}`" if not isinstance(value, list) else f"`{value}` (empty)"


def _default_text(value: str) -> str:
    # A path inside the installed project (the bundled example policy) would print this
    # machine's checkout; show it relative to the project instead.
    path = Path(value)
    if path.is_absolute() and path.is_relative_to(_PROJECT_ROOT):
        return f"`{path.relative_to(_PROJECT_ROOT).as_posix()}` (bundled with the broker)"
    return f'`"{value}"`'


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


_INTRO = """
# Configuration reference

This page lists every setting the broker (`vouch-broker serve`, `invite`, `aws-setup`,
`keys`) reads at start: its TOML key, its environment variable, its type, its default and
what it does. It is generated from the field metadata in `broker/settings.py`; do not edit
it by hand. After changing a setting, regenerate it with:

```sh
{regenerate}
```

## Where settings come from

Three layers, each overriding the one before:

1. the defaults in the table below;
2. a TOML file: `vouch-broker --config FILE ...`, or `VOUCH_CONFIG=FILE` when `--config`
   is not given (one file is read; `--config` wins);
3. `VOUCH_<NAME>` environment variables.

A dotted key in the first column is a key of a TOML table: `aws.region` is `region` in the
`[aws]` table, and its variable joins both names (`VOUCH_AWS_REGION`).

```toml
# /etc/vouch/broker.toml: keys named as in the first column
issuer = "https://vouch.example.com"
redis_url = "rediss://:PASSWORD@redis.internal:6379/0"
signing_keys = "/etc/vouch/keys"
policy_file = "/etc/vouch/org.toml"
rp_id = "vouch.example.com"

[aws]
region = "eu-west-1"
sts_timeout_s = 2.0
```

```sh
VOUCH_CONFIG=/etc/vouch/broker.toml VOUCH_LOG_LEVEL=DEBUG vouch-broker serve
```

Environment values are text: numbers are parsed, booleans accept `true`/`false`/`1`/`0`
(any case), lists are comma-separated (`VOUCH_ORIGINS=https://a.example,https://b.example`).
A setting whose name ends in `_s` is a number of seconds, or a duration written as in the
org policy: `session_ttl_s = "8h"`, `VOUCH_SESSION_TTL_S=90m`, `"2h30m"`, `"1d"`, `"45s"`.
Settings are validated once at start and every problem is reported together; the command
then exits with code 6. An unknown key in the TOML file is an error; an unknown `VOUCH_*`
variable is ignored, so check the spelling of variables you set.
`vouch-broker dev` (development only) overrides some of these itself: it allows the
software authenticator and starts its own Redis and AWS emulator unless `VOUCH_REDIS_URL`
or `VOUCH_AWS_ENDPOINT_URL` is set.

## Settings
"""

_RENAMED_INTRO = """
## Deprecated spellings

Earlier versions read the AWS settings as top-level keys. Those spellings are still read:
`vouch-broker serve` and `vouch-broker dev` log one warning for each at start, naming the
new spelling. Giving the old and the new spelling in the same place (both in the TOML
file, or both variables) is an error. Across layers the usual order applies: a variable
overrides the file, whichever spelling either uses.
"""

_OUTRO = """
The org policy (who may delegate which models, the AWS account, role and STS audience,
admins) is a separate file named by `policy_file`; its format is described in
`policies/org_file.py` and checked by `vouch-broker policy check FILE`.
"""


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
