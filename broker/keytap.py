"""A key tap: a WebAuthn assertion checked against the registered key, its state and counter.

Sign-in, delegation and every tap-bound action ask a person to tap; this is the one place
that decides whether a tap counts, so a rule added here (a flagged key, a revoked person, a
software key where they are not allowed) holds for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from fido2.webauthn import AttestedCredentialData, PublicKeyCredentialDescriptor

from broker.assertion import Asserted, RelyingParty, WebAuthnJson, parse_credential_id
from broker.audit import Audit
from broker.aws_cut import AwsCut
from broker.challenges import FidoState
from broker.errors import AssertionRejected, KeyFlagged, PermissionDenied
from broker.registry import Credential, Registry, credential_hash, user_handle
from broker.revocation import Reason, Revocations

FLAGGED_RECOVERY = (
    "an admin must revoke this key and invite you to enroll a new one "
    '(docs/security.md, "Recovering from a flagged key")'
)


@dataclass(frozen=True)
class Tap:
    """A tap that counts: the key that made it and what the authenticator reported."""

    credential: Credential
    asserted: Asserted

    @property
    def user_verified(self) -> bool:
        return self.asserted.user_verified


@dataclass
class KeyTaps:
    rp: RelyingParty
    registry: Registry
    audit: Audit
    revocations: Revocations
    aws: AwsCut | None = None
    """Told of a flagged key, so AWS denies the sessions the clone may hold."""

    async def active_keys(self, email: str) -> list[AttestedCredentialData]:
        """The person's usable keys, for a ceremony's allow-list."""
        return [c.data for c in await self.registry.credentials_of(email) if c.state == "active"]

    def begin(
        self,
        keys: Sequence[AttestedCredentialData | PublicKeyCredentialDescriptor],
        *,
        uv: bool,
        challenge: bytes | None = None,
    ) -> tuple[WebAuthnJson, FidoState]:
        """WebAuthn request options and the state to keep until the tap comes back."""
        return self.rp.authenticate_begin(keys, uv=uv, challenge=challenge)

    async def verify(self, state: FidoState, response: WebAuthnJson, email: str | None) -> Tap:
        """Check an assertion against the stored key, its state and its counter.

        Raises: AssertionRejected, KeyFlagged, PermissionDenied.
        """
        cid = credential_hash(parse_credential_id(response))
        cred = await self.registry.get(cid)
        if cred is None or (email is not None and cred.email != email):
            await self.audit.record("login_failed", actor=email, cid=cid, reason="unknown key")
            raise AssertionRejected("this security key is not registered")
        await self._check_usable(cred)
        asserted = self.rp.authenticate_complete(state, [cred.data], response)
        if asserted.user_handle and asserted.user_handle != user_handle(cred.email):
            raise AssertionRejected("assertion user handle does not match the key's owner")
        if not await self.registry.advance_counter(cid, asserted.counter):
            # A clone may already hold sessions and agent tokens this key signed: a "not
            # before" on the key ends every one of them, on every replica.
            flagged_at = time.time()
            why = Reason("vouch (signature counter)", "key flagged: it may be cloned")
            await self.revocations.revoke_not_before("cred", cid, now=flagged_at, why=why)
            if self.aws is not None:
                await self.aws.record("credential", cid, flagged_at)
            await self.audit.record(
                "key_flagged",
                actor=cred.email,
                cid=cid,
                counter=asserted.counter,
                stored_counter=cred.counter,
            )
            raise KeyFlagged(
                "signature counter did not increase: this security key may be cloned, so it is"
                " flagged and every session it signed in has ended; " + FLAGGED_RECOVERY
            )
        return Tap(cred, asserted)

    async def _check_usable(self, cred: Credential) -> None:
        if cred.state == "flagged":
            raise KeyFlagged("this security key is flagged as possibly cloned; " + FLAGGED_RECOVERY)
        if cred.state != "active":
            raise AssertionRejected("this security key has been revoked")
        if cred.software and not self.rp.allow_software:
            # Checked at every tap, not only at enrollment: turning the setting off also
            # stops keys enrolled while it was on.
            raise AssertionRejected(
                "software authenticators are not accepted here (VOUCH_ALLOW_SOFTWARE_KEYS)"
            )
        if await self.registry.is_disabled(cred.email):
            raise PermissionDenied("this person's access has been revoked")
