"""The CLI taps for a power-raising action (add a key, invite, reinstate) only if the
challenge commits to the action it shows, and the action is the one the person asked for."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
from vouch_delegate import GrantMismatch
from vouch_delegate._action import action_digest, describe, verified_action
from vouch_delegate._messages import Action, ActionProposal, decode

from broker import actions

pytestmark = pytest.mark.unit

INVITE = {"action": "invite", "by": "admin@example.com", "email": "bob@example.com"}


def proposal(signed: dict[str, Any], shown: dict[str, Any] | None = None) -> ActionProposal:
    """A proposal whose challenge commits to `signed` (as the broker builds it) and which
    shows `shown`."""
    canonical = actions.canonical_json(actions.Action(**signed))
    challenge = actions.challenge_for(canonical, secrets.token_bytes(16))
    text = canonical.decode() if shown is None else json.dumps(shown, sort_keys=True)
    answer = {
        "challenge_id": "c" * 32,
        "action": json.loads(text),
        "action_canonical": text,
        "options": {
            "publicKey": {"challenge": base64.urlsafe_b64encode(challenge).decode().rstrip("=")}
        },
    }
    return decode(answer, ActionProposal, "test")


def test_the_cli_and_the_broker_agree_on_the_action_digest() -> None:
    canonical = actions.canonical_json(actions.Action(**INVITE))
    assert action_digest(canonical.decode()) == actions.challenge_for(canonical, b"\0" * 16)[16:]


def test_a_proposal_whose_challenge_commits_to_the_action_shown_passes() -> None:
    action = verified_action(proposal(INVITE), action="invite", email="bob@example.com")
    assert action == Action(action="invite", by="admin@example.com", email="bob@example.com")
    assert describe(action) == "invite bob@example.com to enroll a security key"


def test_a_challenge_for_another_action_is_refused_before_the_tap() -> None:
    swapped = {**INVITE, "email": "mallory@example.com"}
    with pytest.raises(GrantMismatch, match="does not commit to the action shown"):
        verified_action(proposal(swapped, shown=INVITE))
    reinstate = {**INVITE, "action": "reinstate"}
    with pytest.raises(GrantMismatch, match="does not commit to the action shown"):
        verified_action(proposal(reinstate, shown=INVITE))


def test_an_action_other_than_the_one_asked_for_is_refused() -> None:
    with pytest.raises(GrantMismatch) as caught:
        verified_action(proposal(INVITE), action="invite", email="carol@example.com")
    assert caught.value.detail == (
        "the broker proposed email='bob@example.com', not the requested 'carol@example.com'"
    )
    with pytest.raises(GrantMismatch, match="proposed action='invite'"):
        verified_action(proposal(INVITE), action="reinstate")


def test_an_add_key_approval_must_cover_this_enrollment() -> None:
    signed = {**INVITE, "action": "add-key", "by": "alice@example.com"}
    signed |= {"email": "alice@example.com", "enrollment": "Y2hhbGxlbmdl"}
    shown = proposal(signed)
    assert verified_action(shown, enrollment="Y2hhbGxlbmdl").enrollment == "Y2hhbGxlbmdl"
    with pytest.raises(GrantMismatch, match="enrollment"):
        verified_action(shown, enrollment="b3RoZXI")
