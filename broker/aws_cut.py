"""Revocation that reaches live AWS sessions: the broker writes the roles' Deny policy.

The same policy goes on the agents role and, when there is one, the people role: a revoked
person or key ends their own sessions as well as their agents' (the policy matches by
session tag; people's sessions carry vouch:User and vouch:Key, never an agent or delegation).

Redis stays the source of truth. Every revocation is recorded here too (one sorted set of
entries, score = revocation time, and a version counter); a writer renders the policy from
the live entries (`policies.revocation_policy`), compares it with what IAM holds and writes it
only on change. Any replica may write; a lease in Redis makes one writer at a time. IAM
failures are retried with backoff and never block or fail the revocation itself: the broker
refuses exchanges at once, and the AWS cut follows. A revocation is "cut" once the version
written to IAM is at least the version it was recorded at.

Keys (one Redis Cluster hash slot): ``vouch:{awscut}:entries`` (sorted set of JSON entries),
``vouch:{awscut}:version`` (counter), ``vouch:{awscut}:applied`` (hash: version, at, size,
coarse_before) and ``vouch:{awscut}:lease``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import msgspec
import redis.asyncio as aioredis
from botocore.exceptions import BotoCoreError, ClientError

from broker.errors import StoreUnavailable
from broker.lease import Lease
from broker.metrics import Metrics
from broker.store import PREFIX, guard
from policies.revocation_policy import Kind, RevocationPolicy, RevokedEntry, render

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

log = logging.getLogger("vouch.aws_cut")
# One hash slot ({awscut}) for all four, so the record step's transaction works on a Cluster.
ENTRIES, VERSION = f"{PREFIX}{{awscut}}:entries", f"{PREFIX}{{awscut}}:version"
APPLIED, LEASE = f"{PREFIX}{{awscut}}:applied", f"{PREFIX}{{awscut}}:lease"
Status = Literal["cut", "pending", "disabled"]


class _Entry(msgspec.Struct, frozen=True, array_like=True):
    kind: Kind
    value: str
    revoked_at: int


@dataclass(frozen=True)
class Written:
    """What one write told IAM."""

    version: int
    policy: RevocationPolicy
    changed: bool


class AwsCut:
    """Records revocations for AWS and keeps the role's Deny policy in step (see module doc).

    A plain class (not a dataclass): the web framework inspects the dataclasses it injects,
    and the IAM client's type exists only for the type checker.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        iam: IAMClient | None,
        *,
        role_name: str,
        policy_name: str,
        max_session_s: int,
        people_role_name: str | None = None,
        lease_s: float = 10.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.iam = iam
        """None: the broker has no AWS credentials of its own; the cut is disabled."""
        self.role_name = role_name
        self.people_role_name = people_role_name
        self.policy_name = policy_name
        self.max_session_s = max_session_s
        """The longest session of either role: entries are kept until it has passed."""
        self.metrics = metrics
        self.clock = clock
        self.wake = asyncio.Event()
        self.lease = Lease(redis, LEASE, ttl_ms=int(lease_s * 1000))

    @property
    def enabled(self) -> bool:
        return self.iam is not None

    async def record(self, kind: Kind, value: str, revoked_at: float) -> int:
        """Note a revocation for AWS; returns the version it must be written at to be cut.

        Disabled (no IAM client), nothing is noted: no writer would ever prune the entries.
        """
        if self.iam is None:
            return 0
        # AWS compares whole seconds: a session issued earlier in the revocation's own second
        # must fall before the cut, so the cut is the next whole second.
        at = math.ceil(revoked_at)
        member = msgspec.json.encode(_Entry(kind, value, at))
        async with guard("recording a revocation for AWS"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.zadd(ENTRIES, {member: at})
            pipe.incr(VERSION)
            _, version = await pipe.execute()
        self.wake.set()
        return int(version)

    async def latest(self) -> int:
        """The version of the newest revocation recorded: cut once every one so far is."""
        if self.iam is None:
            return 0
        async with guard("reading the AWS cut"):
            version = await self.redis.get(VERSION)
        return int(version or 0)

    async def status(self, version: int) -> Status:
        if not self.enabled:
            return "disabled"
        async with guard("reading the AWS cut"):
            applied = await self.redis.hget(APPLIED, "version")
        return "cut" if applied is not None and int(applied) >= version else "pending"

    async def wait(self, version: int, timeout_s: float) -> Status:
        """The status once cut, or when `timeout_s` has passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self.status(version)
            if status != "pending" or time.monotonic() >= deadline:
                return status
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    async def pending(self) -> tuple[int, float | None]:
        """(entries recorded but not yet written, age in seconds of the oldest of them)."""
        async with guard("reading the AWS cut"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(VERSION)
            pipe.hget(APPLIED, "version")
            version, applied_version = await pipe.execute()
        behind = int(version or 0) - int(applied_version or 0)
        if behind <= 0:
            return 0, None
        async with guard("reading the AWS cut"):
            newest = cast(
                list[tuple[bytes, float]],
                await self.redis.zrange(ENTRIES, -behind, -1, withscores=True),
            )
        oldest = min((score for _, score in newest), default=None)
        return behind, max(0.0, self.clock() - oldest) if oldest is not None else None

    async def sync(self) -> Written | None:
        """Write the policy if this replica holds the lease; None when another one does.

        Raises:
            StoreUnavailable: Redis did not answer. ClientError, BotoCoreError: IAM failed.
        """
        if self.iam is None:
            return None
        async with guard("taking the AWS cut lease"):
            if not await self.lease.hold():
                return None
            version = int(await self.redis.get(VERSION) or 0)
            rows = cast(list[bytes], await self.redis.zrange(ENTRIES, 0, -1))
        now = int(self.clock())
        entries = [_entry(row) for row in rows]
        policy = render(entries, now=now, max_session_s=self.max_session_s)
        changed = await asyncio.to_thread(self._write, policy.document)
        async with guard("recording the AWS cut"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(
                APPLIED,
                mapping={
                    "version": version,
                    "at": now,
                    "size": policy.size,
                    "coarse_before": policy.coarse_before or 0,
                },
            )
            if policy.pruned:  # no living session needs them: forget them for good
                pipe.zremrangebyscore(ENTRIES, 0, now - self.max_session_s - 300)
            await pipe.execute()
        if policy.coarse_before is not None and changed:
            log.warning(
                "revocations exceed the role's inline policy budget: every session issued"
                " before %s is denied (agents exchange again)",
                policy.coarse_before,
            )
        return Written(version, policy, changed)

    @property
    def role_names(self) -> tuple[str, ...]:
        """The roles the Deny is written on: the agents role, then the people role."""
        if self.people_role_name:
            return (self.role_name, self.people_role_name)
        return (self.role_name,)

    def _write(self, document: str | None) -> bool:
        """Make every role hold exactly `document` (None: no policy); True when one changed.

        The agents role first: a failure on the people role leaves the version unwritten,
        so the next round writes both again (an unchanged role is only read).
        """
        changed = [self._write_role(role, document) for role in self.role_names]
        return any(changed)

    def _write_role(self, role: str, document: str | None) -> bool:
        """Make one role hold exactly `document`; True when it changed."""
        assert self.iam is not None
        try:
            held = self.iam.get_role_policy(RoleName=role, PolicyName=self.policy_name)
            current: object = held["PolicyDocument"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise
            current = None
        if isinstance(current, str):  # botocore decodes it, moto may not
            current = json.loads(current)
        wanted = json.loads(document) if document is not None else None
        if current == wanted:
            return False
        if document is None:
            self.iam.delete_role_policy(RoleName=role, PolicyName=self.policy_name)
        else:
            self.iam.put_role_policy(
                RoleName=role, PolicyName=self.policy_name, PolicyDocument=document
            )
        return True

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.aws_cut_writes.labels(outcome).inc()

    async def _observe(self) -> None:
        """Pending cuts and the oldest one's age, for /metrics (best effort)."""
        if self.metrics is None:
            return
        try:
            behind, age = await self.pending()
        except StoreUnavailable:
            return
        self.metrics.aws_cut_pending.set(behind)
        self.metrics.aws_cut_oldest_pending.set(age or 0)

    async def run(self, stop: asyncio.Event, *, interval_s: float = 1.0) -> None:
        """Keep IAM in step: on every recorded revocation, and each `interval_s` for pruning."""
        backoff = interval_s
        while not stop.is_set():
            try:
                written = await self.sync()
                backoff = interval_s
                self._count("written" if written and written.changed else "unchanged")
                if written is not None and self.metrics is not None:
                    self.metrics.aws_cut_coarse.set(written.policy.coarse_before or 0)
            except (ClientError, BotoCoreError) as exc:
                backoff = min(30.0, backoff * 2)
                self._count("iam-error")
                log.warning("AWS cut not written yet (%s); retrying in %.1f s", _code(exc), backoff)
            except Exception as exc:  # a bug or Redis: keep the loop alive, say what happened
                backoff = min(30.0, backoff * 2)
                self._count("error")
                log.warning("AWS cut loop: %s; retrying in %.1f s", type(exc).__name__, backoff)
            await self._observe()
            self.wake.clear()
            delay = backoff * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()


def _entry(row: bytes | str) -> RevokedEntry:
    raw = msgspec.json.decode(row if isinstance(row, bytes) else row.encode(), type=_Entry)
    return RevokedEntry(raw.revoked_at, raw.kind, raw.value)


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
