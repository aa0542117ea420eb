"""Enrollment and login: invite code or session -> registered key; key tap -> human session."""

from __future__ import annotations

import time
from dataclasses import dataclass

from broker.assertion import RelyingParty, WebAuthnJson
from broker.audit import Audit
from broker.challenges import Challenges, EnrollState, LoginState
from broker.errors import InvalidRequest, PermissionDenied
from broker.identity import person_email
from broker.invites import Invites
from broker.keys import KeyRing
from broker.keytap import KeyTaps
from broker.registry import Registry, user_handle
from broker.session import Person, mint_session


@dataclass(frozen=True)
class Ceremony:
    """What a begin step returns: the challenge handle and the WebAuthn options."""

    challenge_id: str
    options: WebAuthnJson


@dataclass
class SignIn:
    """The enrollment and login ceremonies over Redis state."""

    rp: RelyingParty
    registry: Registry
    taps: KeyTaps
    invites: Invites
    challenges: Challenges
    audit: Audit
    keys: KeyRing
    issuer: str
    session_ttl_s: int
    require_uv: bool

    async def enroll_begin(
        self, email: str, *, code: str | None, person: Person | None
    ) -> Ceremony:
        """Raises: InviteInvalid, PermissionDenied (a session for somebody else)."""
        email = person_email(email)
        invite_key = None
        if person is not None:
            if person.email != email:
                raise PermissionDenied("a session can add keys only to its own account")
        elif code:
            invite_key = await self.invites.peek(code, email)
        else:
            raise InvalidRequest(
                "enrollment needs an invite code or a session from a registered key"
            )
        existing = [c.data for c in await self.registry.credentials_of(email)]
        options, state = self.rp.register_begin(
            email, user_handle(email), existing, uv=self.require_uv
        )
        ceremony = EnrollState(fido=state, email=email, invite=invite_key)
        return Ceremony(await self.challenges.put("enroll", ceremony), options)

    async def enroll_complete(self, challenge_id: str, response: WebAuthnJson) -> tuple[str, str]:
        """Register the key; returns the email and the key's cid.

        Raises: ChallengeInvalid, AssertionRejected, InviteInvalid, Conflict.
        """
        state = await self.challenges.take("enroll", challenge_id, EnrollState)
        email = state.email
        registered = self.rp.register_complete(state.fido, response)
        if state.invite is not None:
            await self.invites.consume_key(state.invite, email)
        cid = await self.registry.add(email, registered.credential, registered.counter)
        await self.audit.record(
            "enrolled", actor=email, cid=cid, aaguid=registered.aaguid, uv=registered.user_verified
        )
        return email, cid

    async def login_begin(self, email: str | None) -> Ceremony:
        keys = []
        if email:
            email = person_email(email)
            keys = await self.taps.active_keys(email)
        # An unknown email gets the same answer as a usernameless login: no account probing.
        options, state = self.taps.begin(keys, uv=self.require_uv)
        ceremony = LoginState(fido=state, email=email or None)
        return Ceremony(await self.challenges.put("login", ceremony), options)

    async def login_complete(
        self, challenge_id: str, response: WebAuthnJson
    ) -> tuple[str, int, str]:
        """A session token, its expiry and the email.

        Raises: ChallengeInvalid, AssertionRejected, KeyFlagged, PermissionDenied.
        """
        state = await self.challenges.take("login", challenge_id, LoginState)
        tap = await self.taps.verify(state.fido, response, state.email)
        cred = tap.credential
        now = int(time.time())
        token, exp = mint_session(
            email=cred.email,
            cid=cred.cid,
            user_verified=tap.user_verified,
            issuer=self.issuer,
            ttl_s=self.session_ttl_s,
            now=now,
            keys=self.keys,
        )
        await self.audit.record("login", actor=cred.email, cid=cred.cid, uv=tap.user_verified)
        return token, exp, cred.email
