"""Power-raising actions, each approved by a fresh user-verified key tap bound to it.

A bearer session never adds power (docs/design.md invariant 10): adding a key, inviting a
person and reinstating one take a tap whose WebAuthn challenge is
``nonce(16) || SHA-256(b"vouch-action-v1\\x00" || canonical JSON of the action)``, the same
construction as a delegation's grant (`broker/grant.py`), so the CLI can check what the tap
approves before it asks for it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

import msgspec

from broker.assertion import WebAuthnJson
from broker.challenges import ActionState, Challenges, FidoState
from broker.errors import AssertionRejected, ChallengeInvalid, InvalidRequest, PermissionDenied
from broker.keytap import KeyTaps, Tap
from broker.session import Person

DOMAIN = b"vouch-action-v1\x00"
NONCE_BYTES = 16
ActionName = Literal["add-key", "invite", "reinstate"]


class Action(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who (`by`) does what (`action`) concerning whom (`email`)."""

    action: ActionName
    by: str
    email: str
    enrollment: str | None = None
    """add-key: the new key's registration challenge (base64url), so the approval covers
    exactly that registration and no other."""


def canonical_json(action: Action) -> bytes:
    """Compact JSON with sorted keys: the exact bytes the digest covers."""
    return msgspec.json.encode(action, order="sorted")


def challenge_for(canonical: bytes, nonce: bytes) -> bytes:
    return nonce + hashlib.sha256(DOMAIN + canonical).digest()


@dataclass(frozen=True)
class Approval:
    """What to tap: the action, its canonical form and the WebAuthn request options."""

    action: Action
    canonical: str
    options: WebAuthnJson


@dataclass(frozen=True)
class Proposal:
    """An action's begin step: the approval and the challenge handle to complete it."""

    challenge_id: str
    approval: Approval


@dataclass
class ActionTaps:
    """Begin and complete tap-bound actions over Redis challenge state."""

    taps: KeyTaps
    challenges: Challenges

    async def ask(self, email: str, action: Action) -> tuple[Approval, FidoState]:
        """The approval `email` must tap (user verification required) and its state.

        Raises:
            PermissionDenied: the person has no active key to tap with.
        """
        keys = await self.taps.active_keys(email)
        if not keys:
            raise PermissionDenied("no active security key to approve this with")
        canonical = canonical_json(action)
        challenge = challenge_for(canonical, secrets.token_bytes(NONCE_BYTES))
        options, fido = self.taps.begin(keys, uv=True, challenge=challenge)
        return Approval(action, canonical.decode(), options), fido

    async def check(self, fido: FidoState, response: WebAuthnJson, email: str) -> Tap:
        """A user-verified tap by an active key of `email` over the asked challenge.

        Raises:
            AssertionRejected, KeyFlagged, PermissionDenied: see `KeyTaps.verify`; also a
                tap without user verification.
        """
        tap = await self.taps.verify(fido, response, email)
        if not tap.user_verified:
            raise AssertionRejected("approving this needs user verification (PIN or biometric)")
        return tap

    async def begin(self, person: Person, action: Action) -> Proposal:
        """Raises: PermissionDenied (no active key)."""
        approval, fido = await self.ask(person.email, action)
        state = ActionState(fido=fido, email=person.email, action=approval.canonical)
        return Proposal(await self.challenges.put(action.action, state), approval)

    async def complete(
        self,
        person: Person,
        name: ActionName,
        challenge_id: str,
        response: WebAuthnJson,
        *,
        shown: str | None = None,
    ) -> tuple[Action, Tap]:
        """The action `person` approved with this tap. `shown` (an admin page's) is the
        canonical action the page showed: unless the challenge committed to it, nothing is
        approved (the challenge is spent).

        Raises:
            ChallengeInvalid: unknown, used, expired, for another action or another person.
            InvalidRequest: `shown` is not the action the challenge committed to.
            AssertionRejected, KeyFlagged, PermissionDenied: the tap does not count.
        """
        state = await self.challenges.take(name, challenge_id, ActionState)
        if state.email != person.email:
            raise ChallengeInvalid("this challenge belongs to another person")
        if shown is not None and shown != state.action:
            raise InvalidRequest("the action shown is not the action this tap was asked to approve")
        tap = await self.check(state.fido, response, person.email)
        return msgspec.json.decode(state.action, type=Action), tap
