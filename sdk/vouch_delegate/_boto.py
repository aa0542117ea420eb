"""The botocore side of `boto3_session`: a credential provider over `AgentCredentials`."""

from __future__ import annotations

import boto3
import botocore.session
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)

from ._credentials import AgentCredentials

METHOD = "vouch"


class VouchRefreshableCredentials(DeferredRefreshableCredentials):
    """botocore's refreshable credentials, fetched on first use from `AgentCredentials`."""

    def __init__(self, source: AgentCredentials) -> None:
        super().__init__(
            refresh_using=source.botocore_metadata, method=METHOD, time_fetcher=source.now
        )
        # botocore ignores refresh failures inside its "advisory" window and only raises
        # inside the "mandatory" one. One window for both lets a revoked delegation fail the
        # next call at once; riding out transient outages is AgentCredentials' job.
        margin = int(source.refresh_margin_s)
        self._advisory_refresh_timeout = margin
        self._mandatory_refresh_timeout = margin


class VouchCredentialProvider(CredentialProvider):
    """The only provider in the session's chain: no ambient AWS credentials by mistake."""

    METHOD = METHOD
    CANONICAL_NAME = "Vouch"

    def __init__(self, credentials: VouchRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> VouchRefreshableCredentials:
        return self._credentials


def session_for(source: AgentCredentials, *, region_name: str | None) -> boto3.Session:
    """A boto3 Session whose only credentials are the agent's."""
    core = botocore.session.Session()
    provider = VouchCredentialProvider(VouchRefreshableCredentials(source))
    core.register_component("credential_provider", CredentialResolver([provider]))
    return boto3.Session(botocore_session=core, region_name=region_name)
