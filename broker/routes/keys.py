"""A person's own security keys: what is registered, since when, and what let it in."""

from __future__ import annotations

import msgspec
from litestar import get

from broker.auth import PersonDep, ServicesDep
from broker.services import Services


class KeyInfo(msgspec.Struct, kw_only=True):
    cid: str
    """The key's handle (a hash of its credential id), as in sessions and the audit trail."""
    state: str
    """active, flagged (possibly cloned) or revoked."""
    added_at: int
    last_used: int | None
    via: str
    """"invite", or "key" (approved by a tap of another key of yours); empty for keys added
    before this was recorded."""
    invite: str | None = None
    approved_by: str | None = None
    aaguid: str
    """The authenticator model the key claimed (self-reported)."""
    software: bool


@get("/v1/keys", tags=["sign-in"])
async def list_keys(services: ServicesDep, person: PersonDep) -> dict[str, list[KeyInfo]]:
    """Your security keys, oldest first: check that you added every one of them."""
    return {"keys": await keys_of(services, person.email)}


async def keys_of(services: Services, email: str) -> list[KeyInfo]:
    """A person's security keys, oldest first (the API's and the pages' one listing)."""
    creds = await services.registry.credentials_of(email)
    return [
        KeyInfo(
            cid=c.cid,
            state=c.state,
            added_at=c.added_at,
            last_used=c.last_used,
            via=c.via,
            invite=c.invite,
            approved_by=c.approved_by,
            aaguid=c.aaguid,
            software=c.software,
        )
        for c in sorted(creds, key=lambda c: (c.added_ms, c.cid))
    ]


ROUTES = [list_keys]
