"""The CLI signs a delegation only if the challenge commits to the grant it shows."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest
from vouch_delegate import ConfigError, GrantMismatch
from vouch_delegate._grant import (
    check_grant_matches,
    format_duration,
    parse_duration,
    verified_grant,
)

pytestmark = pytest.mark.unit

GRANT = {
    "agent": "researcher",
    "email": "alice@example.com",
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


def test_a_challenge_bound_to_the_shown_grant_is_accepted() -> None:
    assert verified_grant(proposal(canonical(GRANT))) == GRANT


def test_a_challenge_bound_to_another_grant_is_refused() -> None:
    wider = {**GRANT, "models": ["us.anthropic.claude-haiku-4-5", "anthropic.claude-opus-4"]}
    with pytest.raises(GrantMismatch, match="does not commit"):
        verified_grant(proposal(canonical(wider), shown=canonical(GRANT)))


def test_a_grant_object_that_differs_from_the_canonical_text_is_refused() -> None:
    text = canonical(GRANT)
    with pytest.raises(GrantMismatch, match="differs"):
        verified_grant(proposal(text, grant={**GRANT, "ttl_s": 60}))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.pop("grant_canonical"),
        lambda p: p["options"]["publicKey"].pop("challenge"),
        lambda p: p["options"]["publicKey"].update(challenge="AAAA"),
        lambda p: p["options"]["publicKey"].update(challenge="!!not base64!!"),
    ],
)
def test_missing_or_short_challenges_are_refused(damage: Any) -> None:
    broken = proposal(canonical(GRANT))
    damage(broken)
    with pytest.raises(GrantMismatch):
        verified_grant(broken)


def test_check_grant_matches_names_the_first_difference_and_skips_unset_fields() -> None:
    check_grant_matches(GRANT, {"agent": "researcher", "rate": None})
    with pytest.raises(GrantMismatch, match=r"agent='researcher'.*'writer'"):
        check_grant_matches(GRANT, {"agent": "writer"})


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
