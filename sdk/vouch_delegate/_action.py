"""Power-raising actions as people read them, and the check that a tap signs what is shown.

Adding a key, inviting a person and reinstating one take a tap whose challenge commits to
the action: ``challenge = nonce(16) || SHA-256(b"vouch-action-v1\\x00" + action_canonical)``
(the construction delegation grants use). Before the key is asked to tap, the CLI recomputes
the digest over the canonical action it shows and checks that the action is the one the
person asked for; if the broker (or anything between) swapped either, it refuses.
"""

from __future__ import annotations

import hashlib

import msgspec

from ._errors import GrantMismatch
from ._grant import challenge_bytes, check_commitment
from ._messages import Action, ActionApproval, ActionProposal

DOMAIN = b"vouch-action-v1\x00"


def action_digest(canonical: str) -> bytes:
    return hashlib.sha256(DOMAIN + canonical.encode("utf-8")).digest()


def verified_action(proposal: ActionApproval | ActionProposal, **expected: str) -> Action:
    """The action a tap would approve, once its challenge commits to it and it says what
    was asked (`expected`: field name -> value, e.g. ``action="invite", email=...``).

    Raises:
        GrantMismatch: the challenge does not commit to `action_canonical`, the proposal's
            `action` says something else, or a field differs from `expected`.
    """
    canonical = proposal.action_canonical
    check_commitment(
        challenge_bytes(proposal.options.public_key), action_digest(canonical), "action"
    )
    try:
        action = msgspec.json.decode(canonical, type=Action)
    except msgspec.DecodeError as exc:  # ValidationError included: JSON, but not an action
        raise GrantMismatch(f"the canonical action is not an action ({exc})") from None
    if action != proposal.action:
        raise GrantMismatch("the proposal's action differs from the canonical action it signs")
    for name, wanted in expected.items():
        actual = getattr(action, name, None)
        if actual != wanted:
            raise GrantMismatch(
                f"the broker proposed {name}={actual!r}, not the requested {wanted!r}"
            )
    return action


def describe(action: Action) -> str:
    """One line for the person, before the tap."""
    match action.action:
        case "add-key":
            return f"add a new security key to {action.email}"
        case "invite":
            return f"invite {action.email} to enroll a security key"
        case "reinstate":
            return f"reinstate {action.email} (revoked until now)"
    return f"{action.action} {action.email}"
