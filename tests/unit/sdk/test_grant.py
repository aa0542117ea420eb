"""The CLI signs a delegation only if the challenge commits to the grant it shows."""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
import os
import tomllib
from typing import Any

import msgspec
import pytest
from vouch_delegate import ConfigError, GrantMismatch, InvalidResponse
from vouch_delegate._grant import (
    check_grant_matches,
    check_models,
    check_requested_grant,
    format_duration,
    names_model,
    parse_duration,
    verified_grant,
)
from vouch_delegate._messages import DelegationProposal, Grant, decode

from policies.catalog import Catalog

pytestmark = pytest.mark.unit

GRANT = {
    "agent": "researcher",
    "budget": None,
    "email": "alice@example.com",
    "jkt": None,
    "max_sts_s": None,
    "models": ["us.anthropic.claude-haiku-4-5-20251001-v1:0"],
    "purpose": "",
    "rate": None,
    "ttl_s": 7200,
}


def canonical(grant: dict[str, Any]) -> str:
    return json.dumps(grant, sort_keys=True, separators=(",", ":"))


def proposal(signed: str, shown: str | None = None, grant: Any = None) -> dict[str, Any]:
    """A broker proposal whose challenge commits to `signed` but which shows `shown`."""
    digest = hashlib.sha256(b"vouch-grant-v1\x00" + signed.encode()).digest()
    challenge = base64.urlsafe_b64encode(os.urandom(16) + digest).decode().rstrip("=")
    text = shown if shown is not None else signed
    return {
        "challenge_id": "c" * 32,
        "grant": grant if grant is not None else json.loads(text),
        "grant_canonical": text,
        "options": {"publicKey": {"challenge": challenge, "rpId": "localhost"}},
    }


def typed(answer: dict[str, Any]) -> DelegationProposal:
    """The proposal as `BrokerClient.delegation_begin` hands it over."""
    return decode(answer, DelegationProposal, "POST /v1/delegations/begin")


def test_a_challenge_bound_to_the_shown_grant_is_accepted() -> None:
    grant = verified_grant(typed(proposal(canonical(GRANT))))
    assert msgspec.to_builtins(grant) == GRANT


def test_a_challenge_bound_to_another_grant_is_refused() -> None:
    wider = {**GRANT, "models": ["us.anthropic.claude-haiku-4-5", "anthropic.claude-opus-4"]}
    with pytest.raises(GrantMismatch, match="does not commit"):
        verified_grant(typed(proposal(canonical(wider), shown=canonical(GRANT))))


def test_a_grant_object_that_differs_from_the_canonical_text_is_refused() -> None:
    text = canonical(GRANT)
    with pytest.raises(GrantMismatch, match="differs"):
        verified_grant(typed(proposal(text, grant={**GRANT, "ttl_s": 60})))


def test_a_signed_canonical_text_that_is_not_a_grant_is_refused() -> None:
    signed = canonical({"agent": "researcher", "models": ["m1"]})  # no email, no ttl_s
    with pytest.raises(GrantMismatch, match=r"not a grant .*email"):
        verified_grant(typed(proposal(signed, grant=GRANT)))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p["options"]["publicKey"].pop("challenge"),
        lambda p: p["options"]["publicKey"].update(challenge="AAAA"),
        lambda p: p["options"]["publicKey"].update(challenge="!!not base64!!"),
        lambda p: p["options"]["publicKey"].update(challenge=12345),
    ],
)
def test_missing_or_short_challenges_are_refused(damage: Any) -> None:
    broken = proposal(canonical(GRANT))
    damage(broken)
    with pytest.raises(GrantMismatch, match="challenge"):
        verified_grant(typed(broken))


MISSING = "Object missing required field"


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        (lambda p: p.pop("grant_canonical"), f"{MISSING} `grant_canonical`"),
        (lambda p: p["grant"].pop("email"), f"{MISSING} `email` - at `$.grant`"),
        (lambda p: p["options"].pop("publicKey"), f"{MISSING} `publicKey` - at `$.options`"),
        (lambda p: p["grant"].update(ttl_s="2h"), "Expected `int`, got `str` - at `$.grant.ttl_s`"),
    ],
)
def test_a_proposal_without_what_the_check_needs_is_an_invalid_response(
    damage: Any, where: str
) -> None:
    broken = proposal(canonical(GRANT))
    damage(broken)
    with pytest.raises(InvalidResponse) as caught:
        typed(broken)
    prefix = "the broker's answer to POST /v1/delegations/begin is malformed"
    assert caught.value.detail == f"{prefix}: {where}"


def test_check_grant_matches_names_the_first_difference_and_skips_unset_fields() -> None:
    grant = Grant(**GRANT)
    check_grant_matches(grant, {"agent": "researcher", "rate": None})
    with pytest.raises(GrantMismatch, match=r"agent='researcher'.*'writer'"):
        check_grant_matches(grant, {"agent": "writer", "ttl_s": 60})
    with pytest.raises(GrantMismatch, match=r"ttl_s=7200.*60"):
        check_grant_matches(grant, {"agent": "researcher", "ttl_s": 60})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("1d", 86400), ("3600", 3600)],
)
def test_durations_people_type(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["", "2 hours", "-5", "0", "h", "1.5h"])
def test_other_durations_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(bad)


HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS = "us.anthropic.claude-opus-4-5-20251101-v1:0"
OPUS_4 = "anthropic.claude-opus-4-20250514-v1:0"
OPUS_4_1 = "anthropic.claude-opus-4-1-20250805-v1:0"
ASKED = {
    "email": "alice@example.com",
    "agent": "researcher",
    "models": ["us.claude-haiku-4-5"],
    "ttl_s": 7200,
    "purpose": "",
    "max_sts_s": None,
    "rate": None,
}


def check(grant: dict[str, Any], **asked: Any) -> None:
    check_requested_grant(Grant(**{**GRANT, **grant}), **{**ASKED, **asked})


@pytest.mark.parametrize(
    ("requested", "proposed"),
    [
        (["us.claude-haiku-4-5"], [HAIKU]),
        ([HAIKU], [HAIKU]),
        (["us.claude-haiku-4-5", HAIKU], [HAIKU]),  # two names of one model
        (["us.claude-sonnet-4-5", "us.claude-haiku-4-5"], [HAIKU, SONNET]),
        (["claude-opus-4", "claude-opus-4-1"], [OPUS_4_1, OPUS_4]),
        (["claude-opus-4"], [OPUS_4]),
    ],
)
def test_a_proposal_with_the_requested_models_canonicalised_is_accepted(
    requested: list[str], proposed: list[str]
) -> None:
    check({"models": proposed}, models=requested)


@pytest.mark.parametrize(
    ("requested", "proposed", "why"),
    [
        (["us.claude-haiku-4-5"], [HAIKU, OPUS], "2 models for 1 requested"),
        (["us.claude-haiku-4-5"], [OPUS], "no model named by 'us.claude-haiku-4-5'"),
        (["claude-haiku-4-5"], [HAIKU], "no model named by 'claude-haiku-4-5'"),  # not the us.
        (["claude-opus-4"], [OPUS_4_1], "no model named by 'claude-opus-4'"),  # 4-1 is not 4
        (["us.claude-haiku-4-5", HAIKU], [HAIKU, OPUS], "not requested: .*opus"),
        (["us.claude-haiku-4-5", "us.claude-sonnet-4-5"], [HAIKU, HAIKU], "repeats"),
        (["us.claude-haiku-4-5", "claude-opus-4"], [HAIKU, OPUS], "no model named by"),
        (["us.claude-haiku-4-5"], [], "empty"),
    ],
)
def test_a_proposal_with_other_models_than_requested_is_refused(
    requested: list[str], proposed: list[str], why: str
) -> None:
    with pytest.raises(GrantMismatch, match=why):
        check({"models": proposed}, models=requested)


@pytest.mark.parametrize(
    ("proposed", "asked", "why"),
    [
        ({"agent": "writer"}, {}, "agent='writer'"),
        ({"ttl_s": 86400}, {}, "ttl_s=86400"),
        ({"purpose": "something else"}, {}, "purpose='something else'"),
        ({"email": "bob@example.com"}, {}, "email='bob@example.com'"),
        ({"max_sts_s": 43200}, {}, "max_sts_s=43200"),  # not asked for: must stay unset
        ({"max_sts_s": 900}, {"max_sts_s": 1800}, "max_sts_s=900"),
        ({"rate": 100}, {"rate": 5}, "rate=100"),
        ({"rate": 0}, {}, "rate=0"),  # the org's cap fills an unset rate, but only a cap
        ({"budget": "50.00"}, {"budget": "5.00"}, "budget='50.00'"),
        ({"budget": "5.00"}, {}, "budget='5.00'"),  # not asked for: must stay unset
        ({}, {"budget": "5.00"}, "budget=None"),  # asked for: must come back
        ({"budget": "5"}, {"budget": "5.00"}, "budget='5'"),  # as typed: the tap signs text
    ],
)
def test_a_proposal_whose_fields_differ_from_the_request_is_refused(
    proposed: dict[str, Any], asked: dict[str, Any], why: str
) -> None:
    with pytest.raises(GrantMismatch, match=why):
        check({"models": [HAIKU], **proposed}, **asked)


def test_a_budget_comes_back_as_asked() -> None:
    check({"models": [HAIKU], "budget": "5.00"}, budget="5.00")


def test_an_unset_rate_may_come_back_as_the_org_policys_cap() -> None:
    check({"models": [HAIKU], "rate": 60})
    check({"models": [HAIKU], "rate": 5, "max_sts_s": 1800}, rate=5, max_sts_s=1800)


def test_every_name_the_builtin_catalog_knows_is_recognised_as_its_id() -> None:
    # The SDK cannot see the catalog, so it recognises names by their shape; this keeps
    # that rule honest for every alias, profile alias and id the broker ships.
    catalog = Catalog.builtin()
    raw = tomllib.loads(
        importlib.resources.files("policies.data").joinpath("catalog.toml").read_text()
    )
    names = set(catalog.ids)
    for model in raw["models"]:
        geographies = model.get("profiles", [])
        names |= {model["id"], *(f"{geo}.{model['id']}" for geo in geographies)}
        for alias in model.get("aliases", []):
            names |= {alias, *(f"{geo}.{alias}" for geo in geographies)}
    assert len(names) > 100
    for name in sorted(names):
        resolved = catalog.resolve(name)
        check_models([name], [resolved])
        others = [i for i in catalog.ids if i != resolved and names_model(name, i)]
        # The one shape the rule cannot tell apart: an alias whose ids differ only by date.
        assert others == [] or name == "mistral-large", (name, others)
