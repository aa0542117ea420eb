"""The botocore side of `boto3_session`: a credential provider over `AgentCredentials`."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.configprovider import BaseProvider, ChainProvider
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


class VouchRegionProvider(BaseProvider):
    """The broker's home region, asked for only when nothing else in botocore's chain
    (AWS_REGION, AWS_DEFAULT_REGION, the profile) names one and a client needs it."""

    def __init__(self, source: AgentCredentials) -> None:
        self._source = source

    def provide(self) -> str | None:
        return self._source.region

    def __deepcopy__(self, memo: dict[int, Any]) -> VouchRegionProvider:
        return self  # botocore copies its config per client; the source is shared


def session_for(source: AgentCredentials, *, region_name: str | None) -> boto3.Session:
    """A boto3 Session whose only credentials are the agent's; its region is `region_name`,
    else the AWS config chain's, else the broker's."""
    core = botocore.session.Session()
    provider = VouchCredentialProvider(VouchRefreshableCredentials(source))
    core.register_component("credential_provider", CredentialResolver([provider]))
    if region_name is None:
        store = core.get_component("config_store")
        configured = store.get_config_provider("region")
        chain = [configured] if configured is not None else []
        store.set_config_provider("region", ChainProvider([*chain, VouchRegionProvider(source)]))
    return boto3.Session(botocore_session=core, region_name=region_name)
