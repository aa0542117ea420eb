"""The Bedrock model catalog: which ids exist, what they route to, and what people call them.

A canonical id is one of three things an agent can be granted:
- a foundation-model id (`anthropic.claude-3-haiku-20240307-v1:0`), called in the home region;
- a system cross-Region inference-profile id (`us.<model id>`), routed to its geography;
- an application inference-profile ARN, routed where the org configured it.
Everything else (aliases, `us.<alias>`) is a name that `Catalog.resolve` maps to one of them.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from policies._toml import Problems, Table, read_toml
from policies.errors import ModelNotCallable, PolicyFileError, Problem, UnknownModel

MODEL_ID = r"[a-z0-9][a-z0-9-]*\.[a-z0-9][a-z0-9.-]*(?::[a-z0-9]+){0,2}"
ALIAS = r"[a-z0-9][a-z0-9.-]{0,63}"
GEOGRAPHY = r"[a-z]{2,10}"
REGION = r"[a-z]{2}(?:-gov)?-[a-z]+-[0-9]{1,2}"
APP_PROFILE_ARN = (
    rf"arn:aws:bedrock:{REGION}:[0-9]{{12}}:application-inference-profile/[a-z0-9]{{1,64}}"
)

Kind = Literal["foundation-model", "inference-profile", "application-inference-profile"]


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """What one canonical id lets an agent call."""

    id: str
    kind: Kind
    model_id: str
    """The foundation model behind the id (the id itself for a foundation model)."""
    regions: tuple[str, ...] = ()
    """A profile's destination regions; a system profile is callable from these too."""
    regionless: bool = False
    """Global profile: AWS authorizes the routed call on the region-less model ARN."""
    profile_only: bool = False
    """A foundation model with no on-demand throughput: only its profiles can call it."""
    name: str = ""
    """The model's display name ("Claude Haiku 4.5"), when the catalog gives one."""

    def callable_from(self, region: str) -> bool:
        """Whether an agent whose credentials are for `region` can invoke this id."""
        if self.kind == "foundation-model":
            return not self.profile_only
        if self.kind == "application-inference-profile":
            return self.id.split(":")[3] == region
        return region in self.regions


class _Definition(msgspec.Struct, frozen=True):
    """One model, geography or application profile as a file defines it, with its origin."""

    key: str
    file: str
    location: str
    data: Mapping[str, Any]


class Catalog:
    """An immutable, validated catalog. Build it with `builtin()` or `load()`."""

    def __init__(self, definitions: tuple[dict[str, _Definition], ...]) -> None:
        self._definitions = definitions
        entries, names, problems = _build(*definitions)
        if problems:
            raise PolicyFileError(problems[0].file, problems)
        self._entries: dict[str, Entry] = entries
        self._names: dict[str, str] = names

    @classmethod
    def builtin(cls) -> Catalog:
        """The catalog shipped with the package."""
        return _builtin()

    @classmethod
    def load(cls, path: Path, base: Catalog | None = None) -> Catalog:
        """The catalog in the TOML file at path, on top of base (entries with the same key win).

        Raises:
            PolicyFileError: every problem in the file, each with its location.
        """
        return cls.from_toml(read_toml(path), str(path), base)

    @classmethod
    def from_toml(cls, data: Mapping[str, Any], file: str, base: Catalog | None = None) -> Catalog:
        """The catalog from parsed TOML (`file` names it in problems), on top of base."""
        problems = Problems(file)
        parsed = _parse(
            Table(data, "", problems, ("geographies", "models", "application_profiles"))
        )
        problems.raise_if_any()
        merged = tuple(
            {**(base._definitions[i] if base else {}), **part} for i, part in enumerate(parsed)
        )
        return cls(merged)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every canonical id, sorted."""
        return tuple(sorted(self._entries))

    def entry(self, canonical_id: str) -> Entry:
        """The entry for a canonical id.

        Raises:
            UnknownModel: not a canonical id of this catalog.
        """
        try:
            return self._entries[canonical_id]
        except KeyError:
            raise UnknownModel(canonical_id, self._suggest(canonical_id)) from None

    def resolve(self, name: str) -> str:
        """The canonical id for an id, profile id, application-profile ARN or alias.

        Raises:
            UnknownModel: with the nearest known names as suggestions.
        """
        try:
            return self._names[name]
        except KeyError:
            raise UnknownModel(name, self._suggest(name)) from None

    def matching(self, pattern: str) -> tuple[str, ...]:
        """Canonical ids matching a glob (`*`, `?`), sorted."""
        return tuple(i for i in self.ids if fnmatch.fnmatchcase(i, pattern))

    def short_name(self, canonical_id: str) -> str:
        """The friendliest name for an id (its first alias), for messages."""
        return next(
            (n for n, i in self._names.items() if i == canonical_id and n != i), canonical_id
        )

    def display_name(self, canonical_id: str) -> str:
        """What a person reads for an id: the catalog's name, with a profile's geography
        ("Claude Haiku 4.5 (US profile)"); else its short name."""
        entry = self._entries.get(canonical_id)
        if entry is None or not entry.name:
            return self.short_name(canonical_id)
        if entry.kind == "inference-profile":
            geo = canonical_id.split(".", maxsplit=1)[0]
            return f"{entry.name} ({geo if geo == 'global' else geo.upper()} profile)"
        return entry.name

    def routes_to(self, model_id: str, region: str) -> tuple[str, ...]:
        """Profiles of a model that are callable from region: what to offer instead of it."""
        return tuple(
            e.id
            for e in self._entries.values()
            if e.model_id == model_id and e.kind != "foundation-model" and e.callable_from(region)
        )

    def require_callable(
        self, canonical_id: str, region: str, offer: Iterable[str] | None = None
    ) -> Entry:
        """The entry, if an agent with credentials for region can invoke it as named.

        Raises:
            UnknownModel: not a canonical id.
            ModelNotCallable: a profile-only model or another region's profile; the error
                offers the model's profiles callable from region (only those in `offer`).
        """
        entry = self.entry(canonical_id)
        if entry.callable_from(region):
            return entry
        allowed = None if offer is None else set(offer)
        routes = [
            i for i in self.routes_to(entry.model_id, region) if allowed is None or i in allowed
        ]
        hints = [self.short_name(i) for i in routes]
        if entry.kind == "foundation-model":
            raise ModelNotCallable(entry.id, region, "is callable only through a profile", hints)
        raise ModelNotCallable(entry.id, region, f"is not callable from {region}", hints)

    def _suggest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, list(self._names), n=3, cutoff=0.6)


@functools.cache
def _builtin() -> Catalog:
    resource = importlib.resources.files("policies") / "data" / "catalog.toml"
    data = tomllib.loads(resource.read_text(encoding="utf-8"))
    return Catalog.from_toml(data, "policies/data/catalog.toml")


# --- parsing: one file's definitions, each checked on its own -------------------------------


def _parse(root: Table) -> tuple[dict[str, _Definition], ...]:
    # Definitions are kept even when they have problems: the caller raises before building.
    geographies: dict[str, _Definition] = {}
    geo_table = root.table("geographies")
    if geo_table is not None:
        for name in geo_table.data:
            _add(geographies, _check_geography(geo_table, name) or geo_table, name)
    models: dict[str, _Definition] = {}
    for table in root.tables("models", _MODEL_KEYS):
        _check_model(table)
        _add(models, table, table.string("id", required=True, pattern=MODEL_ID))
    apps: dict[str, _Definition] = {}
    for table in root.tables("application_profiles", _APP_KEYS):
        _check_app(table)
        _add(apps, table, table.string("arn", required=True, pattern=APP_PROFILE_ARN))
    return geographies, models, apps


def _add(into: dict[str, _Definition], table: Table, key: str | None) -> None:
    if key is None:
        return
    if key in into:
        table.problems.add(table.location, f"{key} is defined twice (also at {into[key].location})")
        return
    into[key] = _Definition(key, table.problems.file, table.location, table.data)


def _check_geography(parent: Table, name: str) -> Table | None:
    """The geography's own table, if it is one."""
    if not _matches(GEOGRAPHY, name):
        parent.problem(name, f"{name!r} is not a geography name (2-10 lowercase letters)")
    table = parent.table(name, ("regions", "regionless"))
    if table is not None:
        if not _regions(table, "regions", required=True):
            table.problem("regions", "a geography needs at least one region")
        table.boolean("regionless", False)
    return table


_MODEL_KEYS = ("id", "name", "aliases", "profile_only", "profiles", "profile_regions")
_APP_KEYS = ("arn", "model", "source", "aliases", "regions")


def _check_model(table: Table) -> None:
    table.string("name")
    table.boolean("profile_only", False)
    _aliases(table)
    profiles = [p for _, p in table.strings("profiles")]
    overrides = table.table("profile_regions")
    if overrides is not None:
        for geo in overrides.data:
            if geo not in profiles:
                overrides.problem(geo, f"{geo!r} is not in this model's profiles")
            _regions(overrides, geo, required=True)
    if table.data.get("profile_only") is True and not profiles:
        table.problem("profile_only", "a profile-only model needs at least one profile")


def _check_app(table: Table) -> None:
    table.string("model", pattern=MODEL_ID)
    table.string("source")
    if ("model" in table.data) == ("source" in table.data):
        table.problem("model", "give exactly one of model (a model id) or source (a profile id)")
    if "source" in table.data and "regions" in table.data:
        table.problem("regions", "regions come from the source profile; drop them")
    _regions(table, "regions")
    _aliases(table)


def _aliases(table: Table) -> None:
    for where, alias in table.strings("aliases"):
        if not _matches(ALIAS, alias):
            table.problems.add(where, f"{alias!r} is not a valid alias")


def _regions(table: Table, key: str, *, required: bool = False) -> list[str]:
    regions = table.strings(key, required=required)
    for where, region in regions:
        if not _matches(REGION, region):
            table.problems.add(where, f"{region!r} is not an AWS region name")
    return [r for _, r in regions]


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


# --- building: entries and names across files, cross-references checked --------------------


class _Builder:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.names: dict[str, str] = {}
        self.problems: list[Problem] = []

    def problem(self, definition: _Definition, where: str, message: str) -> None:
        location = f"{definition.location}.{where}" if where else definition.location
        self.problems.append(Problem(definition.file, location, message))

    def name(self, definition: _Definition, where: str, name: str, target: str) -> None:
        if self.names.get(name, target) != target:
            self.problem(definition, where, f"{name!r} already names {self.names[name]}")
            return
        self.names[name] = target

    def add(self, definition: _Definition, entry: Entry, aliases: Iterable[str]) -> None:
        self.entries[entry.id] = entry
        self.name(definition, "id", entry.id, entry.id)
        for alias in aliases:
            self.name(definition, "aliases", alias, entry.id)


def _build(
    geographies: dict[str, _Definition],
    models: dict[str, _Definition],
    apps: dict[str, _Definition],
) -> tuple[dict[str, Entry], dict[str, str], list[Problem]]:
    builder = _Builder()
    for definition in models.values():
        _build_model(builder, definition, geographies)
    for definition in apps.values():
        _build_app(builder, definition)
    return builder.entries, builder.names, builder.problems


def _build_model(builder: _Builder, model: _Definition, geos: dict[str, _Definition]) -> None:
    data = model.data
    aliases: list[str] = list(data.get("aliases", []))
    if model.key.split(".")[0] in geos:
        builder.problem(model, "id", "starts like an inference-profile id (a geography prefix)")
    fm = Entry(
        id=model.key,
        kind="foundation-model",
        model_id=model.key,
        profile_only=bool(data.get("profile_only", False)),
        name=str(data.get("name", "")),
    )
    builder.add(model, fm, aliases)
    overrides: dict[str, list[str]] = data.get("profile_regions", {})
    for geo in data.get("profiles", []):
        if geo not in geos:
            builder.problem(model, "profiles", f"unknown geography {geo!r}")
            continue
        regions = overrides.get(geo, geos[geo].data["regions"])
        profile = Entry(
            id=f"{geo}.{model.key}",
            kind="inference-profile",
            model_id=model.key,
            regions=tuple(sorted(set(regions))),
            regionless=bool(geos[geo].data.get("regionless", False)),
            name=str(data.get("name", "")),
        )
        builder.add(model, profile, (f"{geo}.{a}" for a in aliases))


def _build_app(builder: _Builder, app: _Definition) -> None:
    data = app.data
    region = app.key.split(":")[3]
    if "source" in data:
        source = builder.entries.get(builder.names.get(data["source"], ""))
        if source is None or source.kind != "inference-profile":
            builder.problem(app, "source", f"unknown system inference profile {data['source']!r}")
            return
        if region not in source.regions:
            builder.problem(app, "arn", f"{source.id} is not callable from {region}")
        model_id, regions, regionless = source.model_id, source.regions, source.regionless
    else:
        model_id, regions, regionless = data["model"], tuple(data.get("regions", [region])), False
        if model_id not in builder.entries or model_id != builder.entries[model_id].model_id:
            builder.problem(app, "model", f"unknown foundation model {model_id!r}")
            return
    entry = Entry(
        id=app.key,
        kind="application-inference-profile",
        model_id=model_id,
        regions=tuple(sorted(set(regions))),
        regionless=regionless,
    )
    builder.add(app, entry, data.get("aliases", []))
