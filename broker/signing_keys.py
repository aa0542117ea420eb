"""Revoked signing keys: recorded in Redis, enforced on every replica, dropped from each ring.

`vouch-broker keys revoke` / `replace-all` write ``vouch:kid:<kid>`` for every stolen key
(for good, and past `VOUCH_REVOCATION_REPLICAS` replicas like any revocation). From then on:

- verification refuses the key's tokens on every replica at once: the kid joins the
  token's other revocation handles in the one Redis round trip each token check already
  makes (`Exchange`, `provide_person`), so there is no window and no second round trip, and
  no answer from Redis means no token (invariant 1);
- the JWKS asks Redis which of the ring's keys are revoked before it answers, so AWS is
  never handed a revoked key by any replica;
- each worker refreshes its ring every `key_refresh_s`: it re-reads the key directory when
  its files change (new keys are picked up without a restart) and drops revoked keys from
  the verifier and the signer. A worker whose active key is revoked signs nothing (503)
  until a new active key is in its directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import redis.asyncio as aioredis

from broker.audit import Audit
from broker.errors import StoreUnavailable
from broker.keys import KeyRing, SigningKeyError, load_key_ring
from broker.replication import Replication
from broker.revocation import signing_key_key
from broker.store import connect, guard, read_many

log = logging.getLogger("vouch.keys")

Listing = tuple[tuple[str, int, int], ...]
"""A key directory's PEM files as (name, mtime ns, size): changes when any file does."""


async def revoke_signing_keys(
    redis: aioredis.Redis,
    kids: Iterable[str],
    *,
    actor: str,
    replicas: int,
    wait_ms: int,
    audit_max_len: int,
) -> None:
    """Record each kid as revoked for good, then audit it.

    Raises:
        StoreUnavailable: Redis could not be asked (nothing recorded).
        RevocationUnconfirmed: not confirmed by the primary and every replica; it may not
            have been recorded (safe to retry).
    """
    now = time.time()
    replication = Replication(redis, replicas=replicas, wait_ms=wait_ms)
    for kid in kids:
        await replication.write(
            signing_key_key(kid), repr(now), ttl_s=None, what="revoking signing keys"
        )
    audit = Audit(redis, max_len=audit_max_len)
    for kid in kids:
        await audit.record(
            "revoked", actor=actor, handle="signing-key", subject=kid, reason="compromise"
        )


def revoke_from_host(
    redis_url: str, kids: list[str], *, actor: str, replicas: int, wait_ms: int, audit_max_len: int
) -> None:
    """What `vouch-broker keys revoke` does on the server host: straight into Redis.

    Raises:
        StoreUnavailable: Redis did not record it.
    """

    async def run() -> None:
        redis = connect(redis_url, timeout_s=2.0)
        try:
            await revoke_signing_keys(
                redis,
                kids,
                actor=actor,
                replicas=replicas,
                wait_ms=wait_ms,
                audit_max_len=audit_max_len,
            )
        finally:
            await redis.aclose()

    asyncio.run(run())


def _listing(directory: Path) -> Listing:
    entries = []
    for path in directory.glob("*.pem"):
        with contextlib.suppress(FileNotFoundError):  # deleted while we list
            stat = path.stat()
            entries.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(entries))


class SigningKeys:
    """Keeps the process's one `KeyRing` current: the key directory (or KMS key) as last read,
    minus every key revoked in Redis. Revocations only accumulate: a Redis outage never
    brings a revoked key back."""

    def __init__(
        self,
        ring: KeyRing,
        redis: aioredis.Redis,
        *,
        directory: Path | None,
        interval_s: float,
    ) -> None:
        self.ring = ring
        self.redis = redis
        self.directory = directory
        self.interval_s = interval_s
        self._signer = ring.signer
        self._keys = dict(ring.public_keys)
        self._revoked = set(ring.revoked)
        self._listing = _listing(directory) if directory is not None else None
        self._directory_problem = ""
        self._problems = {"directory": "", "store": ""}
        """The problem of each kind last logged (and still there)."""

    async def check_revoked(self, also: Iterable[str] = ()) -> None:
        """Ask Redis which of the ring's keys (and `also`) are revoked and drop them (one
        round trip).

        Raises:
            StoreUnavailable: Redis did not answer.
        """
        kids = sorted({*self._keys, *also})
        async with guard("checking signing keys"):
            values = await read_many(self.redis, [signing_key_key(kid) for kid in kids])
        found = {kid for kid, value in zip(kids, values, strict=True) if value is not None}
        if not found <= self._revoked:
            for kid in sorted(found - self._revoked):
                log.warning("signing key %s revoked: no longer verified, published or used", kid)
            self._revoked |= found
            self._apply()

    def read_directory(self) -> tuple[Listing, KeyRing] | None:
        """The key directory's keys when its files changed since the last load, else None.

        Raises:
            SigningKeyError: the directory is unusable now (the previous keys stay).
        """
        if self.directory is None:
            return None
        listing = _listing(self.directory)
        return None if listing == self._listing else (listing, load_key_ring(self.directory))

    def load(self, listing: Listing, ring: KeyRing) -> None:
        """Take the keys of a directory read (`read_directory`), minus the revoked ones."""
        self._listing = listing
        self._signer, self._keys = ring.signer, dict(ring.public_keys)
        self._apply()
        log.info(
            "signing keys loaded: active %s, published %s",
            ring.signer.kid,
            ", ".join(sorted(self.ring.public_keys)),
        )

    async def refresh(self) -> None:
        """Reload the directory and check revocations; problems are logged, never raised."""
        changed = None
        try:  # the files are read in a thread, the ring changed only here, on the loop
            changed = await asyncio.to_thread(self.read_directory)
        except SigningKeyError as exc:
            # Rotation and replacement rename files one at a time, so a directory without
            # exactly one active key is normal for a moment; seen twice in a row, it is not.
            problem = f"signing keys: keeping the previous keys: {exc}"
            if problem == self._directory_problem:
                self._logged("directory", problem)
            self._directory_problem = problem
        else:
            self._directory_problem = self._problems["directory"] = ""
        # Revocations are read after the files and before the new keys are taken: `keys
        # revoke` writes Redis before it deletes files, so keys that left the directory are
        # known as revoked (not merely unknown) by the time the ring stops holding them, and
        # their tokens keep getting `token-revoked`.
        new_keys = changed[1].public_keys if changed is not None else {}
        try:
            await self.check_revoked(also=new_keys)
        except StoreUnavailable as exc:
            self._logged("store", f"signing keys: {exc}")
        else:
            self._problems["store"] = ""
        if changed is not None:
            self.load(*changed)

    async def run(self) -> None:
        """Refresh now and every `interval_s` until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    def _logged(self, kind: str, problem: str) -> None:
        """Log a problem once, not at every refresh that still sees it."""
        if problem != self._problems[kind]:
            log.warning("%s", problem)
        self._problems[kind] = problem

    def _apply(self) -> None:
        self.ring.update(self._signer, self._keys, frozenset(self._revoked))
