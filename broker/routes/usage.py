"""What Bedrock use cost, from its model invocation logs: your own, or everyone's for an admin."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import QueryParameter

from broker.auth import HttpRequest, PersonDep, ServicesDep, client_address
from broker.errors import Conflict, InvalidRequest, PermissionDenied, Unavailable
from broker.services import Services
from broker.session import Person
from broker.usage import MAX_SINCE_S, Report
from broker.usage_sources import SourceError
from policies.duration import parse_duration
from policies.usage import By

NOT_CONFIGURED = (
    "usage reports are not configured on this broker: an operator sets usage_source "
    "(VOUCH_USAGE_SOURCE) to where Bedrock's model invocation logs are (docs/usage.md)"
)


async def usage_report(
    services: Services, person: Person, *, since: str, by: By, everyone: bool, address: str
) -> Report:
    """The report `person` asked for: theirs, or with `everyone` (admins) everyone's. The API
    and the usage page share it, rate limit included.

    Raises:
        InvalidRequest: `since` is not a duration of at most MAX_SINCE_S.
        PermissionDenied: `everyone` from someone who is not an admin.
        RateLimited: too many reports this minute from the address or the person.
        Conflict: no usage source is configured (reason `usage-not-configured`), or it
            cannot be read.
        Unavailable: the source cannot be read now.
    """
    seconds = parse_duration(since)
    if not seconds or not 0 < seconds <= MAX_SINCE_S:
        raise InvalidRequest(
            f"since: {since!r} is not a duration of at most {MAX_SINCE_S // 86_400}d (24h, 7d)"
        )
    if everyone and not services.org.is_admin(person.email):
        raise PermissionDenied("all=true needs an admin named in the org policy")
    await services.limits.hit("usage report", address=address, identity=person.email)
    if not services.usage.source:
        raise Conflict(NOT_CONFIGURED, reason="usage-not-configured")
    store = services.delegations.store

    async def lookup(dlg_id: str) -> str | None:
        found = await store.get(dlg_id)
        return found.email if found else None

    try:
        report, _ = await services.usage.report(
            since_s=seconds, by=by, email=None if everyone else person.email, lookup=lookup
        )
    except SourceError as exc:
        if exc.unavailable:
            raise Unavailable(f"the invocation logs cannot be read now: {exc}") from None
        raise Conflict(f"the invocation logs cannot be read: {exc}") from None
    return report


@get("/v1/usage", tags=["usage"])
async def read_usage(
    *,
    request: HttpRequest,
    services: ServicesDep,
    person: PersonDep,
    since: Annotated[str, QueryParameter(max_length=16)] = "24h",
    by: Annotated[By, QueryParameter()] = "delegation",
    everyone: Annotated[bool, QueryParameter(name="all")] = False,
) -> Report:
    """Tokens and exact cost of Bedrock calls in the last `since` (24h, 7d, ...), grouped
    `by` person, agent, delegation or model: yours and your agents', or with `all=true`
    (admins) everyone's, with calls of sessions that are not the broker's as their own row.
    Records arrive minutes after the calls. Each report reads its whole range of logs, so
    reports are rate-limited per client address and per person (`rate_usage_per_min`).
    """
    return await usage_report(
        services,
        person,
        since=since,
        by=by,
        everyone=everyone,
        address=client_address(request),
    )


ROUTES = [read_usage]
