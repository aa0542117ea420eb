"""Listed delegations with their state, read from the revocation handles that enforce it.

A delegation revoked by itself has its record marked; one killed by an agent, person or
security-key revocation does not: those write one "not before" handle, not every record it
covers. So the list asks the handles, the same ones an exchange checks, for every listed
delegation in one MGET; what the list says then cannot differ from what an exchange does,
and a revocation stays one write however many delegations it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from broker.delegation_store import Delegation
from broker.revocation import Reason, Revocations, delegation_key, not_before_key, reason_key
from broker.spend_follower import spend_key
from policies.budget import from_units, plain

State = Literal["active", "revoked"]
# Most specific first: a delegation revoked by itself says so even if its agent was too.
_HANDLES = (("agent", "agent"), ("user", "user"), ("cred", "credential"))


class ListedDelegation(Delegation, frozen=True, kw_only=True):
    state: State
    """"revoked" once any handle refuses its token (then `revoked_*` say which and why)."""
    revoked_handle: str | None = None
    """What was revoked: "delegation", "agent", "user" (its person) or "credential" (a key)."""
    spent: str | None = None
    """With a budget: what it has spent so far as the spend follower counted it (decimal
    text, the price table's currency; it lags Bedrock's log delivery)."""


def _keys(record: Delegation) -> list[str]:
    values = {"agent": record.sub, "user": record.email, "cred": record.cid}
    return [
        delegation_key(record.id),
        *(not_before_key(kind, values[kind]) for kind, _ in _HANDLES),
        *(reason_key(kind, values[kind]) for kind, _ in _HANDLES),
        *([spend_key(record.id)] if record.budget else []),
    ]


async def with_states(
    revocations: Revocations, records: Sequence[Delegation]
) -> list[ListedDelegation]:
    """`records` with their state (and spend, where they have a budget), in one round trip.

    Raises: StoreUnavailable.
    """
    wanted = list(dict.fromkeys(key for record in records for key in _keys(record)))
    found = dict(zip(wanted, await revocations.read(wanted) if wanted else [], strict=True))
    return [_listed(record, found) for record in records]


def _listed(record: Delegation, found: dict[str, bytes | None]) -> ListedDelegation:
    fields = msgspec.structs.asdict(record)
    if record.budget:
        fields["spent"] = plain(from_units(int(found[spend_key(record.id)] or 0)))
    if record.revoked_at is not None or found[delegation_key(record.id)] is not None:
        return ListedDelegation(**fields, state="revoked", revoked_handle="delegation")
    values = {"agent": record.sub, "user": record.email, "cred": record.cid}
    for kind, handle in _HANDLES:
        since = found[not_before_key(kind, values[kind])]
        if since is None or record.created_at >= float(since):
            continue
        why = _reason(found[reason_key(kind, values[kind])])
        fields.update(
            revoked_at=int(float(since)),
            revoked_by=why.by if why else None,
            revoked_reason=why.reason if why else None,
        )
        return ListedDelegation(**fields, state="revoked", revoked_handle=handle)
    return ListedDelegation(**fields, state="active")


def _reason(raw: bytes | None) -> Reason | None:
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=Reason)
    except msgspec.DecodeError:  # written by another version: the state stands without it
        return None
