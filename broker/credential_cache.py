"""A cache with single flight around any credential provider (aws-vault's shape).

Credentials are kept per grant key (principal, models, duration) until `margin_s` before
they expire, or a third of their life when that is shorter (so short-lived ones are cached
too); concurrent misses for one key share a single provider call; the LRU is bounded so
memory stays flat. Revocation never relies on eviction: every request is checked against
Redis before the cache is consulted, and eviction only frees what can no longer be served.
An answer says whether it came from the provider just now (`Served.fresh`): a provider call
can outlast a revocation, so the exchange checks again before answering such credentials.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from broker.authorize import CredentialGrant, GrantKey, Principal
from broker.providers import CredentialProvider, IssuedCredentials


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    credentials: IssuedCredentials
    fresh_until: float
    """Served until then; after it the next request refreshes."""


class Served(NamedTuple):
    """Credentials for a grant, and whether a provider call made them for this request."""

    credentials: IssuedCredentials
    fresh: bool
    """True when this request waited on the provider (its own call or a single flight it
    joined): what was checked before the call may have changed during it. False: a hit."""


@dataclass
class CachedProvider:
    inner: CredentialProvider
    max_entries: int = 10_000
    margin_s: float = 300.0
    entries: OrderedDict[GrantKey, _Entry] = field(default_factory=OrderedDict)
    inflight: dict[GrantKey, asyncio.Future[IssuedCredentials]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def min_duration_s(self) -> int:
        return self.inner.min_duration_s

    @property
    def region(self) -> str | None:
        """The provider's home region, for a provider that has one (AWS: the org's)."""
        region = getattr(self.inner, "region", None)
        return region if isinstance(region, str) and region else None

    def close(self) -> None:
        self.inner.close()

    def check(self, models: tuple[str, ...], expires_at: int) -> None:
        self.inner.check(models, expires_at)

    async def issue(self, grant: CredentialGrant, now: float) -> Served:
        """Cached credentials with more than `margin_s` left, else one shared provider call."""
        key = grant.key
        hit = self.entries.get(key)
        if hit is not None and now < hit.fresh_until:
            self.entries.move_to_end(key)
            return Served(hit.credentials, fresh=False)
        pending = self.inflight.get(key)
        if pending is not None:
            return Served(await asyncio.shield(pending), fresh=True)
        return Served(await self._fill(grant), fresh=True)

    def forget(self, key: GrantKey) -> None:
        """Drop one entry: credentials found to belong to a revoked principal."""
        self.entries.pop(key, None)

    async def _fill(self, grant: CredentialGrant) -> IssuedCredentials:
        key = grant.key
        future: asyncio.Future[IssuedCredentials] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            creds = await self.inner.issue(grant)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self.inflight.pop(key, None)
        margin = min(self.margin_s, grant.duration_s / 3)
        fresh_until = creds.expiration.timestamp() - margin
        self.entries[key] = _Entry(grant.principal, creds, fresh_until)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        future.set_result(creds)
        return creds

    def evict(self, revoked: Callable[[Principal], bool]) -> int:
        """Drop every entry whose principal a revocation names; returns how many."""
        dead = [key for key, entry in self.entries.items() if revoked(entry.principal)]
        for key in dead:
            del self.entries[key]
        return len(dead)
