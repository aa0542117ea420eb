"""WebAuthn challenges: server-side state, single use (GETDEL), TTL <= 120 s.

A challenge is bound to its purpose (enroll, login, delegate, invite, reinstate) and to the
data the ceremony needs, so a challenge issued for one ceremony cannot complete another.
"""

from __future__ import annotations

import secrets
from typing import TypeVar

import msgspec
import redis.asyncio as aioredis

from broker.assertion import WebAuthnJson
from broker.errors import ChallengeInvalid
from broker.store import PREFIX, guard

FidoState = WebAuthnJson
"""python-fido2's ceremony state: opaque to us, handed back to fido2 as it came."""


class EnrollState(msgspec.Struct, frozen=True):
    fido: FidoState
    email: str
    invite: str | None
    """The invite id this enrollment uses (bound to this challenge at begin), if any."""
    approval: FidoState | None = None
    """Adding a key without an invite: the state of the tap an existing key must make."""
    action: str | None = None
    """The canonical action that approval tap signs (`broker/actions.py`)."""


class LoginState(msgspec.Struct, frozen=True):
    fido: FidoState
    email: str | None


class DelegateState(msgspec.Struct, frozen=True):
    fido: FidoState
    email: str
    grant: str
    """The canonical grant the tap signs, exactly as shown to the person."""
    request_id: str | None = None
    """The agent's request this approval answers, if any."""


class ActionState(msgspec.Struct, frozen=True):
    fido: FidoState
    email: str
    """Who must tap."""
    action: str
    """The canonical action the tap signs, exactly as shown."""


State = TypeVar("State", EnrollState, LoginState, DelegateState, ActionState)


class _Stored(msgspec.Struct, frozen=True):
    purpose: str
    state: msgspec.Raw


class Challenges:
    """Put a ceremony's state under a random id; take it back exactly once."""

    def __init__(self, redis: aioredis.Redis, *, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def put(
        self, purpose: str, state: EnrollState | LoginState | DelegateState | ActionState
    ) -> str:
        challenge_id = secrets.token_urlsafe(18)
        body = msgspec.json.encode(_Stored(purpose, msgspec.Raw(msgspec.json.encode(state))))
        async with guard("storing a challenge"):
            await self.redis.set(f"{PREFIX}chal:{challenge_id}", body, ex=self.ttl_s)
        return challenge_id

    async def take(self, purpose: str, challenge_id: str, kind: type[State]) -> State:
        """The state, deleted in the same step so it can never be used twice.

        Raises:
            ChallengeInvalid: unknown, already used, expired, or for another purpose.
        """
        if not isinstance(challenge_id, str) or not 16 <= len(challenge_id) <= 64:
            raise ChallengeInvalid("challenge id is malformed")
        async with guard("using a challenge"):
            body = await self.redis.getdel(f"{PREFIX}chal:{challenge_id}")
        if body is None:
            raise ChallengeInvalid("challenge is unknown, already used or expired")
        stored = msgspec.json.decode(body, type=_Stored)
        if stored.purpose != purpose:
            raise ChallengeInvalid(f"challenge was not issued for {purpose}")
        return msgspec.json.decode(stored.state, type=kind)
