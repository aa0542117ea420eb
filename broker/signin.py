"""Enrollment and login: an invite, or a tap by a registered key -> a new key; a tap -> a session.

A bearer session never adds a key (docs/design.md invariant 10): a key is added with an
unused admin invite for that email, or with a fresh user-verified tap, in the same ceremony,
by an active key of the same person. Every completion re-checks the person (invariant 11).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass

from fido2.webauthn import AttestedCredentialData, PublicKeyCredentialDescriptor

from broker.actions import Action, ActionTaps, Approval
from broker.assertion import RelyingParty, WebAuthnJson
from broker.audit import Audit
from broker.challenges import Challenges, EnrollState, LoginState
from broker.decoys import LoginDecoys
from broker.errors import AssertionRejected, InvalidRequest, PermissionDenied
from broker.identity import person_email
from broker.invites import Invites
from broker.keys import KeyRing
from broker.keytap import KeyTaps
from broker.registry import Authorized, Registry, user_handle
from broker.revocation import Revocations
from broker.session import Person, mint_session

REGISTRATION_CHALLENGE_BYTES = 32


@dataclass(frozen=True)
class Ceremony:
    """What a begin step returns: the challenge handle, the WebAuthn options and, when an
    existing key must approve (adding a key without an invite), that approval."""

    challenge_id: str
    options: WebAuthnJson
    approval: Approval | None = None


@dataclass(frozen=True)
class Enrolled:
    email: str
    cid: str
    via: str


@dataclass
class SignIn:
    """The enrollment and login ceremonies over Redis state."""

    rp: RelyingParty
    registry: Registry
    taps: KeyTaps
    actions: ActionTaps
    invites: Invites
    challenges: Challenges
    decoys: LoginDecoys
    revocations: Revocations
    audit: Audit
    keys: KeyRing
    issuer: str
    session_ttl_s: int
    require_uv: bool

    async def enroll_begin(
        self, email: str, *, code: str | None, person: Person | None
    ) -> Ceremony:
        """Raises: InviteInvalid, PermissionDenied (a session for somebody else, a revoked
        person, no active key to approve with), InvalidRequest (neither code nor session)."""
        email = person_email(email)
        if code:
            invite = await self.invites.peek(code, email)
            await self.registry.check_enabled(email)
            options, fido = await self._registration(email)
            state = EnrollState(fido=fido, email=email, invite=invite.id)
            challenge_id = await self.challenges.put("enroll", state)
            until = int(time.time()) + self.challenges.ttl_s
            await self.invites.bind(invite.id, email, challenge_id, until=until)
            return Ceremony(challenge_id, options)
        if person is None:
            raise InvalidRequest(
                "enrollment needs an invite code or a session (and a tap by one of your"
                " registered keys)"
            )
        if person.email != email:
            raise PermissionDenied("a session can add keys only to its own account")
        await self.registry.check_enabled(email)
        enrollment = secrets.token_bytes(REGISTRATION_CHALLENGE_BYTES)
        options, fido = await self._registration(email, challenge=enrollment)
        action = Action(action="add-key", by=email, email=email, enrollment=_b64(enrollment))
        approval, approval_state = await self.actions.ask(email, action)
        state = EnrollState(
            fido=fido,
            email=email,
            invite=None,
            approval=approval_state,
            action=approval.canonical,
        )
        return Ceremony(await self.challenges.put("enroll", state), options, approval)

    async def _registration(
        self, email: str, *, challenge: bytes | None = None
    ) -> tuple[WebAuthnJson, WebAuthnJson]:
        existing = [c.data for c in await self.registry.credentials_of(email)]
        return self.rp.register_begin(
            email, user_handle(email), existing, uv=self.require_uv, challenge=challenge
        )

    async def enroll_complete(
        self, challenge_id: str, response: WebAuthnJson, approval: WebAuthnJson | None
    ) -> Enrolled:
        """Register the key, once the person and what authorizes it are checked again.

        Raises: ChallengeInvalid, AssertionRejected, KeyFlagged, InviteInvalid,
            PermissionDenied (a revoked person), Conflict (the key is already registered).
        """
        state = await self.challenges.take("enroll", challenge_id, EnrollState)
        email = state.email
        await self.registry.check_enabled(email)
        if state.invite is not None:
            how = Authorized("invite", invite=state.invite)
        elif state.approval is not None:
            if approval is None:
                raise AssertionRejected(
                    "adding a key needs a user-verified tap from one of your registered keys"
                    " (the `approval` the begin step asked for)"
                )
            tap = await self.actions.check(state.approval, approval, email)
            how = Authorized("key", approved_by=tap.credential.cid)
        else:  # no state is ever stored like this; refuse rather than guess
            raise AssertionRejected("this enrollment has nothing that authorizes it")
        registered = self.rp.register_complete(state.fido, response)
        if state.invite is not None:
            await self.invites.consume(state.invite, email, challenge_id)
        cid = await self.registry.add(email, registered.credential, registered.counter, how)
        await self.decoys.note_id_length(len(registered.credential.credential_id))
        await self.audit.record(
            "enrolled",
            actor=email,
            cid=cid,
            via=how.via,
            invite=how.invite,
            approved_by=how.approved_by,
            aaguid=registered.aaguid,
            software=registered.software,
            uv=registered.user_verified,
        )
        return Enrolled(email, cid, how.via)

    async def login_begin(self, email: str | None) -> Ceremony:
        allowed: list[AttestedCredentialData] | list[PublicKeyCredentialDescriptor] = []
        if email:
            email = person_email(email)
            # Every registered key, usable or not, so that the tap of a revoked or flagged
            # key is refused with the reason; an email with no key gets stable decoys shaped
            # like real ids, so the answer does not say who is enrolled (docs/security.md).
            allowed = [c.data for c in await self.registry.credentials_of(email)]
            if not allowed:
                allowed = await self.decoys.for_email(email)
        options, state = self.taps.begin(allowed, uv=self.require_uv)
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

    async def logout(self, person: Person) -> float:
        """End this session on every replica; when.

        Raises: StoreUnavailable (not recorded; safe to retry).
        """
        now = time.time()
        await self.revocations.revoke_session(person.jti, expires_at=person.expires_at, now=now)
        await self.audit.record("logout", actor=person.email, cid=person.cid)
        return now


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
