"""Agent tokens: what a person delegated to one agent, signed by the broker.

The token's one home: its claims as a Struct, `mint` and `verify`. Nothing else reads agent
claims by name. Claims (docs/design.md, "Tokens"): iss, aud, sub = ``agent.<name>.<email>``,
iat, nbf, exp, jti, dlg (the delegation id), models, act = {sub, cid, amr} (who approved,
with which key, how), max_sts_s / rate when the grant narrows them, and cnf = {jkt} when
the delegation is bound to the agent's key (RFC 9449 section 6: the token then needs a DPoP
proof of that key, broker/dpop.py).
"""

from __future__ import annotations

import secrets
from typing import Final

import msgspec

from broker.errors import TokenInvalid
from broker.keys import KeyRing
from broker.revocation import delegation_key, not_before_key
from broker.tokens import AGENT_TYP, Expectation, mint, verify
from broker.validation_messages import error_sentence
from policies.identity import AGENT_PREFIX, agent_sub

REQUIRED: Final = ("iss", "aud", "sub", "iat", "exp", "jti", "dlg", "models", "act")


class Actor(msgspec.Struct, frozen=True):
    """RFC 8693 `act`: the person who approved, with which key, verified how."""

    sub: str
    cid: str
    amr: tuple[str, ...]


class Confirmation(msgspec.Struct, frozen=True):
    """RFC 7800 `cnf`: the key the token is bound to, by its RFC 7638 thumbprint."""

    jkt: str


class AgentClaims(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The verified claims of an agent token (field names are the claim names)."""

    iss: str
    aud: str | list[str]
    sub: str
    iat: int
    exp: int
    jti: str
    dlg: str
    models: tuple[str, ...]
    act: Actor
    nbf: int | None = None
    max_sts_s: int | None = None
    rate: int | None = None
    cnf: Confirmation | None = None

    @property
    def agent(self) -> str:
        """The agent name (the sub's middle part; names contain no dot)."""
        return self.sub[len(AGENT_PREFIX) :].partition(".")[0]

    @property
    def person(self) -> str:
        """The delegating person's email."""
        return self.act.sub

    def handles(self) -> list[str]:
        """The revocation handles that kill this token: its delegation, agent, person, key."""
        return [
            delegation_key(self.dlg),
            not_before_key("agent", self.sub),
            not_before_key("user", self.act.sub),
            not_before_key("cred", self.act.cid),
        ]


def expectation(issuer: str, leeway_s: int) -> Expectation:
    return Expectation(
        typ=AGENT_TYP, issuer=issuer, audience=issuer, required=REQUIRED, leeway_s=leeway_s
    )


def mint_agent_token(
    *,
    agent: str,
    actor: Actor,
    dlg_id: str,
    models: tuple[str, ...],
    ttl_s: int,
    max_sts_s: int | None,
    rate: int | None,
    issuer: str,
    now: int,
    keys: KeyRing,
    jkt: str | None = None,
) -> tuple[str, AgentClaims]:
    """A signed agent token and its claims; bound to the key `jkt` names when given."""
    claims = AgentClaims(
        iss=issuer,
        aud=issuer,
        sub=agent_sub(agent, actor.sub),
        iat=now,
        nbf=now,
        exp=now + ttl_s,
        jti=secrets.token_urlsafe(16),
        dlg=dlg_id,
        models=models,
        act=actor,
        max_sts_s=max_sts_s,
        rate=rate,
        cnf=Confirmation(jkt) if jkt is not None else None,
    )
    return mint(msgspec.to_builtins(claims), typ=AGENT_TYP, keys=keys), claims


def verify_agent_token(
    token: str, expect: Expectation, *, keys: KeyRing, now: float
) -> AgentClaims:
    """The claims of a valid agent token (signature, type, times; not revocation).

    Raises:
        TokenInvalid: see `broker.tokens.verify`, or claims of the wrong shape.
        TokenExpired: expired beyond the leeway.
    """
    raw = verify(token, expect, keys=keys, now=now)
    try:
        claims = msgspec.convert(raw, AgentClaims)
    except msgspec.ValidationError as exc:
        raise TokenInvalid(f"agent token claims are malformed: {error_sentence(exc)}") from None
    if claims.sub != agent_sub(claims.agent, claims.act.sub):
        raise TokenInvalid("agent token sub does not name its approving person")
    return claims
