"""The role policy that makes AWS deny what the broker revoked: a pure function of the records.

Every STS session the broker issues carries principal tags (`vouch:User`, `vouch:Agent`,
`vouch:Delegation`, `vouch:Key`, `vouch:AccessType`; a person's own sessions have no agent or
delegation tag). A revocation becomes a Deny on the agents role, and the same Deny on the
people role, that matches exactly the sessions it kills:

- a delegation: sessions tagged with its id (ids are never reused, so no time is needed);
- an agent (`agent.<name>.<email>`), a person, a security key: the sessions tagged with it and
  issued before the revocation (`DateLessThan aws:TokenIssueTime`), so that sessions a
  reinstated person or a re-delegated agent gets later keep working.

Entries are kept only while a session they deny can still be alive (issued before the
revocation, living at most the longest session the role allows). Inline policies of a role
share 10,240 characters (whitespace excluded); when the exact entries do not fit, the oldest
ones are replaced by one coarser cut, `aws:TokenIssueTime` before the newest of them for every
session of the role, which still denies everything revoked (and makes every agent exchange
once more).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from policies.identity import parse_agent_sub

ROLE_INLINE_BUDGET: Final = 10_240
"""IAM: all inline policies of one role together, whitespace excluded."""
KEEP_MARGIN_S: Final = 300
"""Past the longest session: clock skew and an exchange in flight at the revocation."""
TAG_USER, TAG_AGENT = "aws:PrincipalTag/vouch:User", "aws:PrincipalTag/vouch:Agent"
TAG_DELEGATION, TAG_KEY = "aws:PrincipalTag/vouch:Delegation", "aws:PrincipalTag/vouch:Key"
ISSUED = "aws:TokenIssueTime"

Kind = Literal["delegation", "agent", "user", "credential"]


@dataclass(frozen=True, order=True)
class RevokedEntry:
    """One revocation as AWS must enforce it."""

    revoked_at: int
    """Epoch seconds: sessions issued before it are denied (delegations: all of them)."""
    kind: Kind
    value: str
    """A delegation id, an agent sub, an email, or a key's cid."""


@dataclass(frozen=True)
class RevocationPolicy:
    """The rendered policy and what it holds."""

    document: str | None
    """Compact JSON, or None when nothing needs denying (the policy should be deleted)."""
    entries: tuple[RevokedEntry, ...]
    """The entries denied exactly."""
    coarse_before: int | None
    """When entries did not fit: every session issued before this is denied."""
    pruned: int
    """Entries dropped because no session they deny can still be alive."""

    @property
    def size(self) -> int:
        return len(self.document or "")


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def live(entries: Iterable[RevokedEntry], *, now: int, max_session_s: int) -> list[RevokedEntry]:
    """The entries a still-living session could need: revoked within the longest session."""
    horizon = now - max_session_s - KEEP_MARGIN_S
    return sorted(e for e in entries if e.revoked_at > horizon)


def render(
    entries: Sequence[RevokedEntry],
    *,
    now: int,
    max_session_s: int,
    actions: Sequence[str] = ("bedrock:*",),
    budget: int = ROLE_INLINE_BUDGET,
) -> RevocationPolicy:
    """The Deny policy for `entries`, within `budget` characters.

    Raises:
        ValueError: an agent entry that is not an agent sub (the broker stores canonical ones).
    """
    keep = live(entries, now=now, max_session_s=max_session_s)
    pruned = len(entries) - len(keep)
    # Newest first: when the budget runs out, the oldest fall under the coarse cut. Fewer
    # exact entries never make the document longer, so the most that fit is a binary search.
    newest = sorted(keep, reverse=True)
    attempt = _attempt(newest, len(newest), actions)
    if attempt[0] is None or _packed(attempt[0]) <= budget:
        return RevocationPolicy(attempt[0], attempt[1], None, pruned)
    low, high = 0, len(newest) - 1  # the answer is in [low, high]; exact=0 always fits
    while low < high:
        mid = (low + high + 1) // 2
        document = _attempt(newest, mid, actions)[0]
        if document is not None and _packed(document) <= budget:
            low = mid
        else:
            high = mid - 1
    document, kept, coarse = _attempt(newest, low, actions)
    return RevocationPolicy(document, kept, coarse, pruned)


def _attempt(
    newest: Sequence[RevokedEntry], exact: int, actions: Sequence[str]
) -> tuple[str | None, tuple[RevokedEntry, ...], int | None]:
    """The document with the `exact` newest entries and a coarse cut for the rest."""
    coarse = max((_cut_at(e) for e in newest[exact:]), default=None)
    # Whatever the cut covers already needs no statement of its own.
    kept = tuple(sorted(e for e in newest[:exact] if coarse is None or _cut_at(e) > coarse))
    return _document(kept, coarse, actions), kept, coarse


def _cut_at(entry: RevokedEntry) -> int:
    """The coarsest `aws:TokenIssueTime` bound that still denies all of the entry's sessions.

    A revoked delegation's sessions were all issued before its revocation, but within the
    same second counts: token issue times have second resolution.
    """
    return entry.revoked_at + 1 if entry.kind == "delegation" else entry.revoked_at


def _document(
    entries: Sequence[RevokedEntry], coarse: int | None, actions: Sequence[str]
) -> str | None:
    statements: list[dict[str, object]] = []
    action: str | list[str] = actions[0] if len(actions) == 1 else sorted(actions)

    def deny(sid: str, condition: dict[str, dict[str, object]]) -> None:
        statements.append(
            {
                "Sid": sid,
                "Effect": "Deny",
                "Action": action,
                "Resource": "*",
                "Condition": condition,
            }
        )

    if coarse is not None:
        deny("VouchCutAll", {"DateLessThan": {ISSUED: iso(coarse)}})
    delegations = sorted({e.value for e in entries if e.kind == "delegation"})
    if delegations:
        deny("VouchDelegations", {"StringEquals": {TAG_DELEGATION: _one_or_list(delegations)}})
    timed = sorted(e for e in entries if e.kind != "delegation")
    for at in sorted({e.revoked_at for e in timed}):
        group = [e for e in timed if e.revoked_at == at]
        for sid, condition in _timed(group):
            deny(f"{sid}{at}", {**condition, "DateLessThan": {ISSUED: iso(at)}})
    if not statements:
        return None
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def _timed(group: Sequence[RevokedEntry]) -> list[tuple[str, dict[str, dict[str, object]]]]:
    """Statements (sid prefix, match conditions) for entries revoked at one instant."""
    out: list[tuple[str, dict[str, dict[str, object]]]] = []
    users = sorted({e.value for e in group if e.kind == "user"})
    if users:
        out.append(("VouchUsers", {"StringEquals": {TAG_USER: _one_or_list(users)}}))
    keys = sorted({e.value for e in group if e.kind == "credential"})
    if keys:
        out.append(("VouchKeys", {"StringEquals": {TAG_KEY: _one_or_list(keys)}}))
    for n, entry in enumerate(sorted(e for e in group if e.kind == "agent")):
        name, email = parse_agent_sub(entry.value)
        out.append((f"VouchAgent{n}x", {"StringEquals": {TAG_AGENT: name, TAG_USER: email}}))
    return out


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _packed(document: str) -> int:
    """Characters as IAM counts them for the role budget: whitespace excluded."""
    return sum(1 for ch in document if not ch.isspace())
