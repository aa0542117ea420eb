"""Credential providers: a cloud-neutral grant in, short-lived cloud credentials out.

A provider is one module with a class that has `name`, `min_duration_s`, `issue(grant)` and
`close()`, plus one line in `PROVIDERS` below: the broker then serves
``POST /v1/credentials/<name>`` for it through the same verify, revocation, authorize and
cache steps (`broker.exchange`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from broker.authorize import CredentialGrant
from broker.providers import aws_sts

if TYPE_CHECKING:
    from broker.keys import KeyRing
    from broker.metrics import Metrics
    from broker.settings import Settings
    from policies import Catalog, OrgPolicy


class IssuedCredentials(Protocol):
    """Credentials a provider issued: when they end and the document the client receives."""

    @property
    def expiration(self) -> datetime: ...

    def process_document(self) -> dict[str, object]: ...


class CredentialProvider(Protocol):
    name: str
    min_duration_s: int

    async def issue(self, grant: CredentialGrant) -> IssuedCredentials:
        """Raises: the provider's Unavailable or rejected errors (broker.errors)."""
        ...

    def check(self, models: tuple[str, ...], expires_at: int) -> None:
        """Raises GrantInvalid when no exchange could serve these models (checked before a
        person taps for a delegation)."""
        ...

    def close(self) -> None: ...


ProviderFactory = Callable[
    ["Settings", "OrgPolicy", "Catalog", "KeyRing", "Metrics"], CredentialProvider
]


PROVIDERS: dict[str, ProviderFactory] = {"aws": aws_sts.build}
