"""Agent tokens verified recently, so a repeat exchange does not verify the same signature.

Keyed by the token's exact text (a token has one spelling, broker/tokens.py), bounded (least
recently used goes first), and an entry is good only while its token is unexpired and the key
that signed it is still the ring's same key object: a reload that drops the key, or `keys
revoke`, ends it at the next lookup, and the revocation round trip that every exchange still
makes names the signing key's handle anyway. Only successes are kept; a refusal is worked out
again each time. Revocation, rate caps and DPoP proofs stay per request (broker/exchange.py).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from broker.agent_token import AgentClaims, verify_agent_token
from broker.keys import KeyRing
from broker.tokens import Expectation, signing_kid


@dataclass(frozen=True)
class Verified:
    claims: AgentClaims
    kid: str
    key: Any
    """The ring's public key object that verified it (identity, not equality, is checked)."""


class VerifiedTokens:
    """A bounded cache in front of `verify_agent_token`."""

    def __init__(self, keys: KeyRing, expect: Expectation, *, max_entries: int) -> None:
        self.keys = keys
        self.expect = expect
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Verified] = OrderedDict()
        self._generation = keys.generation

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str, now: float) -> Verified:
        """The verified claims of `token` and the kid that signed it.

        Raises: as `verify_agent_token` (TokenInvalid, TokenExpired, TokenRevoked).
        """
        if self._generation != self.keys.generation:
            self._generation = self.keys.generation
            self.drop_unknown_keys()
        entry = self._entries.get(token)
        if entry is not None:
            if (
                entry.claims.exp > now - self.expect.leeway_s
                and self.keys.public_keys.get(entry.kid) is entry.key
            ):
                self._entries.move_to_end(token)
                return entry
            del self._entries[token]  # expired, or its key left the ring: verify again
        claims = verify_agent_token(token, self.expect, keys=self.keys, now=now)
        kid = signing_kid(token)
        verified = Verified(claims, kid, self.keys.public_keys.get(kid))
        if self.max_entries > 0:
            self._entries[token] = verified
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return verified

    def drop_unknown_keys(self) -> None:
        """Forget every token whose signing key is no longer the ring's (after a reload)."""
        keys = self.keys.public_keys
        stale = [t for t, e in self._entries.items() if keys.get(e.kid) is not e.key]
        for token in stale:
            del self._entries[token]
