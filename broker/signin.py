"""Enrollment and login: invite code or session -> registered key; assertion -> human session."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import policies
from broker.assertion import Asserted, RelyingParty, parse_credential_id
from broker.audit import Audit
from broker.challenges import Challenges
from broker.errors import AssertionRejected, InvalidRequest, KeyFlagged, PermissionDenied
from broker.invites import Invites
from broker.keys import KeyRing
from broker.registry import Credential, Registry, credential_hash, user_handle
from broker.session import Person, mint_session
from policies.errors import PoliciesError

# ASCII only (no confusables), within the STS source-identity and session-tag alphabets.
_EMAIL = re.compile(r"[a-z0-9][a-z0-9._+=-]{0,63}@[a-z0-9-]+(\.[a-z0-9-]+)+")


def normalize_email(value: str) -> str:
    """The org policy's normal form (NFKC, lower case, ASCII), narrowed to what AWS accepts.

    The email becomes the STS source identity and a session-tag value, so it must fit both.

    Raises:
        InvalidRequest: not a plain ASCII email that fits an STS source identity (64 chars).
    """
    try:
        email = policies.normalize_email(value.strip())
    except (PoliciesError, AttributeError):
        email = ""
    if len(email) > 64 or not _EMAIL.fullmatch(email):
        raise InvalidRequest(
            "email must be a plain ASCII address of at most 64 characters "
            "(letters, digits and . _ + = - before the @)"
        )
    return email


@dataclass(frozen=True)
class Ceremony:
    """What a begin step returns: the challenge handle and the WebAuthn options."""

    challenge_id: str
    options: dict[str, Any]


@dataclass
class SignIn:
    """The enrollment and login ceremonies over Redis state."""

    rp: RelyingParty
    registry: Registry
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
        email = normalize_email(email)
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
        state = {"fido": state, "email": email, "invite": invite_key}
        return Ceremony(await self.challenges.put("enroll", state), options)

    async def enroll_complete(self, challenge_id: str, response: Any) -> tuple[str, str]:
        """Register the key; returns the email and the key's cid.

        Raises: ChallengeInvalid, AssertionRejected, InviteInvalid, Conflict.
        """
        state = await self.challenges.take("enroll", challenge_id)
        email = state["email"]
        registered = self.rp.register_complete(state["fido"], response)
        if state["invite"] is not None:
            await self.invites.consume_key(state["invite"], email)
        cid = await self.registry.add(email, registered.credential, registered.counter)
        await self.audit.record(
            "enrolled", actor=email, cid=cid, aaguid=registered.aaguid, uv=registered.user_verified
        )
        return email, cid

    async def login_begin(self, email: str | None) -> Ceremony:
        creds = []
        if email:
            email = normalize_email(email)
            creds = [
                c.data for c in await self.registry.credentials_of(email) if c.state == "active"
            ]
        # An unknown email gets the same answer as a usernameless login: no account probing.
        options, state = self.rp.authenticate_begin(creds, uv=self.require_uv)
        ceremony_state = {"fido": state, "email": email}
        return Ceremony(await self.challenges.put("login", ceremony_state), options)

    async def login_complete(self, challenge_id: str, response: Any) -> tuple[str, int, str]:
        """A session token, its expiry and the email.

        Raises: ChallengeInvalid, AssertionRejected, KeyFlagged, PermissionDenied.
        """
        state = await self.challenges.take("login", challenge_id)
        cred, asserted = await self.verify_assertion(state["fido"], response, state.get("email"))
        now = int(time.time())
        token, exp = mint_session(
            email=cred.email,
            cid=cred.cid,
            user_verified=asserted.user_verified,
            issuer=self.issuer,
            ttl_s=self.session_ttl_s,
            now=now,
            keys=self.keys,
        )
        await self.audit.record("login", actor=cred.email, cid=cred.cid, uv=asserted.user_verified)
        return token, exp, cred.email

    async def verify_assertion(
        self, fido_state: dict[str, Any], response: Any, email: str | None
    ) -> tuple[Credential, Asserted]:
        """Check an assertion against the stored key, its state and its counter.

        Raises: AssertionRejected, KeyFlagged, PermissionDenied.
        """
        cid = credential_hash(parse_credential_id(response))
        cred = await self.registry.get(cid)
        if cred is None or (email is not None and cred.email != email):
            await self.audit.record("login_failed", actor=email, cid=cid, reason="unknown key")
            raise AssertionRejected("this security key is not registered")
        await self._check_usable(cred)
        asserted = self.rp.authenticate_complete(fido_state, [cred.data], response)
        if asserted.user_handle and asserted.user_handle != user_handle(cred.email):
            raise AssertionRejected("assertion user handle does not match the key's owner")
        if not await self.registry.advance_counter(cid, asserted.counter):
            await self.audit.record(
                "key_flagged",
                actor=cred.email,
                cid=cid,
                counter=asserted.counter,
                stored_counter=cred.counter,
            )
            raise KeyFlagged("signature counter did not increase: the key may be cloned")
        return cred, asserted

    async def _check_usable(self, cred: Credential) -> None:
        if cred.state == "flagged":
            raise KeyFlagged("this security key is flagged as possibly cloned; ask an admin")
        if cred.state != "active":
            raise AssertionRejected("this security key has been revoked")
        if await self.registry.is_disabled(cred.email):
            raise PermissionDenied("this person's access has been revoked")
