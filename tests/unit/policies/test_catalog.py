"""The model catalog: built-in data, name resolution, extension files and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import Catalog, ModelNotCallable, PolicyFileError, UnknownModel

pytestmark = pytest.mark.unit

CLAUDE_IDS = [
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "anthropic.claude-opus-4-5-20251101-v1:0",
    "anthropic.claude-opus-4-1-20250805-v1:0",
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "anthropic.claude-sonnet-4-6",
    "anthropic.claude-opus-4-6-v1",
]
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
APP_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"


def write(tmp_path: Path, text: str, name: str = "catalog.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("model_id", CLAUDE_IDS)
def test_builtin_has_the_claude_models_callable_only_through_profiles(
    catalog: Catalog, model_id: str
) -> None:
    entry = catalog.entry(model_id)
    assert entry.kind == "foundation-model"
    assert entry.model_id == model_id
    assert entry.profile_only
    assert f"us.{model_id}" in catalog.ids


def test_builtin_has_other_providers_and_every_geography(catalog: Catalog) -> None:
    providers = {
        i.split(".")[0] for i in catalog.ids if catalog.entry(i).kind == "foundation-model"
    }
    assert {"anthropic", "amazon", "meta", "mistral"} <= providers
    prefixes = {
        i.split(".")[0] for i in catalog.ids if catalog.entry(i).kind == "inference-profile"
    }
    assert prefixes == {"us", "eu", "apac", "jp", "au", "global"}


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("claude-sonnet-4-5", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-haiku-4-5", "anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("us.claude-haiku-4-5", "us.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("global.claude-opus-4-5", "global.anthropic.claude-opus-4-5-20251101-v1:0"),
        ("nova-pro", "amazon.nova-pro-v1:0"),
        ("amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
        ("eu.amazon.nova-pro-v1:0", "eu.amazon.nova-pro-v1:0"),
    ],
)
def test_resolve_maps_ids_profiles_and_aliases_to_canonical_ids(
    catalog: Catalog, name: str, canonical: str
) -> None:
    assert catalog.resolve(name) == canonical


def test_unknown_name_suggests_the_nearest(catalog: Catalog) -> None:
    with pytest.raises(UnknownModel) as caught:
        catalog.resolve("claude-sonet-4-5")
    assert caught.value.name == "claude-sonet-4-5"
    assert "claude-sonnet-4-5" in caught.value.suggestions
    assert caught.value.code == "unknown-model"
    assert 'unknown model "claude-sonet-4-5" (did you mean' in str(caught.value)
    with pytest.raises(UnknownModel, match=r'unknown model "zzz"$'):
        catalog.entry("zzz")


def test_profiles_carry_their_destination_regions(catalog: Catalog) -> None:
    us = catalog.entry("us.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert us.regions == ("us-east-1", "us-east-2", "us-west-2")
    assert not us.regionless
    # A per-model override: Sonnet 4.5's US profile also routes to us-west-1.
    assert "us-west-1" in catalog.entry("us.anthropic.claude-sonnet-4-5-20250929-v1:0").regions
    eu = catalog.entry("eu.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert {"eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1"} <= set(eu.regions)
    glob = catalog.entry("global.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert glob.regionless
    assert len(glob.regions) > 15


def test_callable_from_and_the_hints_for_what_is_not(catalog: Catalog) -> None:
    assert catalog.entry("amazon.nova-pro-v1:0").callable_from("eu-west-1")
    assert not catalog.entry("us.amazon.nova-pro-v1:0").callable_from("eu-west-1")
    with pytest.raises(ModelNotCallable) as caught:
        catalog.require_callable("anthropic.claude-haiku-4-5-20251001-v1:0", "eu-west-1")
    assert caught.value.hints == ("eu.claude-haiku-4-5", "global.claude-haiku-4-5")
    assert caught.value.model_id == "anthropic.claude-haiku-4-5-20251001-v1:0"
    assert caught.value.region == "eu-west-1"
    assert caught.value.code == "model-not-callable"
    with pytest.raises(
        ModelNotCallable, match=r"is not callable from eu-west-1; use one of: eu\.nova-pro$"
    ):
        catalog.require_callable(
            "us.amazon.nova-pro-v1:0", "eu-west-1", offer=["eu.amazon.nova-pro-v1:0"]
        )


def test_matching_and_short_names(catalog: Catalog) -> None:
    assert catalog.matching("us.anthropic.claude-*-4-5-*") == (
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "us.anthropic.claude-opus-4-5-20251101-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    )
    assert (
        catalog.short_name("eu.anthropic.claude-sonnet-4-5-20250929-v1:0") == "eu.claude-sonnet-4-5"
    )


def test_display_names_come_from_the_catalog_with_a_profiles_geography(catalog: Catalog) -> None:
    haiku = "anthropic.claude-haiku-4-5-20251001-v1:0"
    assert catalog.display_name(haiku) == "Claude Haiku 4.5"
    assert catalog.display_name(f"us.{haiku}") == "Claude Haiku 4.5 (US profile)"
    assert catalog.display_name(f"global.{haiku}") == "Claude Haiku 4.5 (global profile)"
    # Without a name in the catalog (or not in it at all), the short name stands in.
    assert catalog.display_name("no.such-model") == "no.such-model"


EXTENSION = f"""
[geographies.us]
regions = ["us-east-1", "us-east-2", "us-west-1", "us-west-2"]

[[models]]
id = "acme.coder-v1:0"
aliases = ["acme-coder"]
profiles = ["us"]

[[models]]
id = "amazon.nova-micro-v1:0"
aliases = ["nova-micro", "tiny"]

[[application_profiles]]
arn = "{APP_ARN}"
source = "global.claude-sonnet-4-5"
aliases = ["team-sonnet"]

[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/zz99"
model = "acme.coder-v1:0"
regions = ["us-east-1", "us-west-2"]
"""


def test_an_org_file_adds_models_and_application_profiles_and_replaces_by_key(
    catalog: Catalog, tmp_path: Path
) -> None:
    extended = Catalog.load(write(tmp_path, EXTENSION), base=catalog)
    assert extended.resolve("us.acme-coder") == "us.acme.coder-v1:0"
    assert extended.entry("us.acme.coder-v1:0").regions == (
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    )
    # The replaced geography applies to built-in models too; Sonnet 4.5 keeps its override.
    assert "us-west-1" in extended.entry("us.amazon.nova-pro-v1:0").regions
    assert extended.resolve("tiny") == "amazon.nova-micro-v1:0"
    app = extended.entry(extended.resolve("team-sonnet"))
    assert app.id == APP_ARN
    assert app.kind == "application-inference-profile"
    assert app.model_id == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert app.regionless
    assert app.callable_from("us-east-1")
    assert not app.callable_from("us-west-2")
    direct = extended.entry(
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/zz99"
    )
    assert direct.regions == ("us-east-1", "us-west-2")
    assert not direct.regionless
    assert extended.routes_to("acme.coder-v1:0", "us-east-1") == (
        "us.acme.coder-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/zz99",
    )
    # The base is untouched.
    with pytest.raises(UnknownModel):
        catalog.resolve("acme-coder")


def test_a_file_alone_is_a_whole_catalog(tmp_path: Path) -> None:
    alone = Catalog.load(write(tmp_path, '[[models]]\nid = "acme.m-v1"\naliases = ["m"]\n'))
    assert alone.ids == ("acme.m-v1",)
    assert alone.resolve("m") == "acme.m-v1"


BROKEN = """
[geographies.us]
regions = ["us-east-1", "mars-1"]

[geographies.XX]
regions = []

[geographies.eu]
regionz = ["eu-west-1"]

[[models]]
id = "Not An Id"

[[models]]
id = "acme.a-v1"
aliases = ["Bad Alias", 3]
profile_only = "yes"
profiles = ["us", "moon"]
profile_regions = { eu = ["eu-west-1"] }

[[models]]
id = "acme.a-v1"

[[models]]
id = "acme.b-v1"
profile_only = true

[[models]]
aliases = ["orphan"]

[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:123:application-inference-profile/x"
model = "acme.a-v1"

[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/y"
model = "acme.a-v1"
source = "us.acme.a-v1"
regions = ["us-east-1"]
"""


def test_every_problem_in_a_broken_file_is_reported_with_its_location(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(PolicyFileError) as caught:
        Catalog.load(path)
    found = {(p.location, p.message) for p in caught.value.problems}
    expected_locations = [
        "geographies.us.regions[1]",
        "geographies.XX.regions",
        "geographies.XX",
        "geographies.eu.regionz",
        "geographies.eu.regions",
        "models[0].id",
        "models[1].aliases[0]",
        "models[1].aliases[1]",
        "models[1].profile_only",
        "models[1].profile_regions.eu",
        "models[2]",
        "models[3].profile_only",
        "models[4].id",
        "application_profiles[0].arn",
        "application_profiles[1].model",
        "application_profiles[1].regions",
    ]
    locations = {loc for loc, _ in found}
    assert set(expected_locations) <= locations, sorted(found)
    assert all(p.file == str(path) for p in caught.value.problems)
    assert ("geographies.eu.regionz", "unknown key (did you mean regions?)") in found
    assert ("models[2]", "acme.a-v1 is defined twice (also at models[1])") in found
    text = str(caught.value)
    assert text.startswith(f"{path}: {len(caught.value.problems)} problems:")
    assert f"{path}: models[0].id: 'Not An Id' is not a valid id" in text
    assert caught.value.code == "policy-file-invalid"


CROSS_BROKEN = """
[[models]]
id = "acme.a-v1"
aliases = ["claude-haiku-4-5"]
profiles = ["mars"]

[[models]]
id = "us.fake-v1"

[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1"
source = "us.nothing"

[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a2"
model = "acme.missing-v1"

[[application_profiles]]
arn = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a3"
source = "us.claude-haiku-4-5"

[[application_profiles]]
arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a4"
model = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
"""


def test_cross_references_are_checked_against_the_base(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError) as caught:
        Catalog.load(write(tmp_path, CROSS_BROKEN, "org-models.toml"), base=catalog)
    messages = {f"{p.location}: {p.message}" for p in caught.value.problems}
    assert messages >= {
        f"models[0].aliases: 'claude-haiku-4-5' already names {HAIKU}",
        "models[0].profiles: unknown geography 'mars'",
        "models[1].id: starts like an inference-profile id (a geography prefix)",
        "application_profiles[0].source: unknown system inference profile 'us.nothing'",
        "application_profiles[1].model: unknown foundation model 'acme.missing-v1'",
        f"application_profiles[2].arn: us.{HAIKU} is not callable from eu-west-1",
        f"application_profiles[3].model: unknown foundation model 'us.{HAIKU}'",
    }, messages
    assert all(p.file.endswith("org-models.toml") for p in caught.value.problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models = [", "not TOML"),
        ("geographies = 3", "geographies: expected a table, got int 3"),
        ("models = [1]", "models[0]: expected a table, got 1"),
        ('models = "x"', "models: expected an array of tables"),
        ("[geographies]\nus = 1", "geographies.us: expected a table, got int 1"),
        (
            '[[models]]\nid = "a.b"\nprofile_regions = 2',
            "models[0].profile_regions: expected a table",
        ),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Catalog.load(write(tmp_path, text))


def test_a_missing_file_is_a_policy_file_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="No such file") as caught:
        Catalog.load(tmp_path / "absent.toml")
    assert caught.value.problems[0].location == ""
