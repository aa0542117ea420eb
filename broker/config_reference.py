"""The configuration reference (docs/configuration.md), generated from `broker.settings`.

Names, types and defaults come from the `Settings` struct; descriptions from the docstring
under each field and the start-up checks from `_semantic_problems`, both read from the
module's source with `ast`, so the page cannot drift from the code.
`python -m broker.config_reference > docs/configuration.md` regenerates it.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from broker import settings as settings_module
from broker.settings import ENV_PREFIX, Settings

REGENERATE = "uv run python -m broker.config_reference > docs/configuration.md"
# Messages in `_semantic_problems` read "<field>: <rule>" (or "<a> and <b>: <rule>").
_CHECK = re.compile(r"(?P<fields>[a-z_]+(?: and [a-z_]+)*): (?P<rule>.+)")
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


def field_docs(source: str) -> dict[str, tuple[str, str]]:
    """(annotation, docstring) of every annotated field of `Settings` in `source`.

    Raises:
        ValueError: a field without a docstring (the reference would have a hole).
    """
    found: dict[str, tuple[str, str]] = {}
    body = _class_body(ast.parse(source), Settings.__name__)
    for node, after in zip(body, [*body[1:], None], strict=True):
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        doc = _string_of(after)
        if doc is None:
            raise ValueError(f"Settings.{node.target.id} has no docstring in broker/settings.py")
        found[node.target.id] = (ast.unparse(node.annotation), " ".join(doc.split()))
    return found


def start_checks(source: str) -> dict[str, list[str]]:
    """The rules `_semantic_problems` enforces, by field (plain-string messages only)."""
    checks: dict[str, list[str]] = {}
    functions = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef)
        and node.name in {"_semantic_problems", "_url_problems"}
    ]
    for name in settings_module.BOUNDS:
        checks.setdefault(name, []).append(settings_module.bound_rule(name))
    in_fstrings: set[int] = set()  # f-string pieces hold a value we cannot show
    for node in (inner for function in functions for inner in ast.walk(function)):
        if isinstance(node, ast.JoinedStr):
            in_fstrings.update(id(part) for part in node.values)
        if (
            not isinstance(node, ast.Constant)
            or not isinstance(node.value, str)
            or id(node) in in_fstrings
        ):
            continue
        match = _CHECK.fullmatch(node.value)
        if match is None:
            continue
        names = match["fields"].split(" and ")
        rule = match["rule"] if len(names) == 1 else f"{match['rule']} ({', '.join(names)})"
        for name in names:
            checks.setdefault(name, []).append(rule)
    return checks


def rows() -> list[FieldDoc]:
    """Every Settings field, in definition order.

    Raises:
        ValueError: a field is missing from the source or has no docstring.
    """
    source = inspect.getsource(settings_module)
    docs, checks = field_docs(source), start_checks(source)
    out = []
    for info in msgspec.structs.fields(Settings):
        if info.name not in docs:
            raise ValueError(f"Settings.{info.name} not found in broker/settings.py source")
        annotation, description = docs[info.name]
        out.append(
            FieldDoc(
                name=info.name,
                env=f"{ENV_PREFIX}{info.name.upper()}",
                type=annotation,
                default=_default(info),
                description=description,
                checks=tuple(checks.get(info.name, ())),
            )
        )
    return out


def render() -> str:
    """The whole Markdown page."""
    lines = [_INTRO.format(regenerate=REGENERATE).strip(), "", *_table(rows()), "", _OUTRO.strip()]
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
        cells = (f"`{f.name}`", f"`{f.env}`", _type_cell(f.type), f.default, text)
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return lines


def _type_cell(annotation: str) -> str:
    if annotation.startswith("list["):
        return f"`{annotation}` (env: comma-separated)"
    return f"`{annotation}`"


def _default(info: msgspec.structs.FieldInfo) -> str:
    if info.default_factory is not msgspec.NODEFAULT:
        value = info.default_factory()
    elif info.default is not msgspec.NODEFAULT:
        value = info.default
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return _default_text(value)
    if isinstance(value, int) and info.name.endswith("_s") and value >= 3600:
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


def _class_body(module: ast.Module, name: str) -> list[ast.stmt]:
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node.body
    raise ValueError(f"class {name} not found in broker/settings.py")


def _string_of(node: ast.stmt | None) -> str | None:
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return node.value.value
    return None


_INTRO = """
# Configuration reference

This page lists every setting the broker (`vouch-broker serve`, `invite`, `aws-setup`,
`keys`) reads at start: its TOML key, its environment variable, its type, its default and
what it does. It is generated from `broker/settings.py`; do not edit it by hand. After
changing a setting, regenerate it with:

```sh
{regenerate}
```

## Where settings come from

Three layers, each overriding the one before:

1. the defaults in the table below;
2. a TOML file: `vouch-broker --config FILE ...`, or `VOUCH_CONFIG=FILE` when `--config`
   is not given (one file is read; `--config` wins);
3. `VOUCH_<NAME>` environment variables.

```toml
# /etc/vouch/broker.toml: top-level keys, named as in the first column
issuer = "https://vouch.example.com"
redis_url = "rediss://:PASSWORD@redis.internal:6379/0"
signing_keys = "/etc/vouch/keys"
policy_file = "/etc/vouch/org.toml"
rp_id = "vouch.example.com"
```

```sh
VOUCH_CONFIG=/etc/vouch/broker.toml VOUCH_LOG_LEVEL=DEBUG vouch-broker serve
```

Environment values are text: numbers are parsed, booleans accept `true`/`false`/`1`/`0`
(any case), lists are comma-separated (`VOUCH_ORIGINS=https://a.example,https://b.example`).
Settings are validated once at start and every problem is reported together; the command
then exits with code 6. An unknown key in the TOML file is an error; an unknown `VOUCH_*`
variable is ignored, so check the spelling of variables you set.
`vouch-broker dev` (development only) overrides some of these itself: it allows the
software authenticator and starts its own Redis and AWS emulator unless `VOUCH_REDIS_URL`
or `VOUCH_AWS_ENDPOINT_URL` is set.

## Settings
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
