"""`boto3_session`: a boto3 Session whose credentials come from, and follow, an agent token."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._credentials import AgentCredentials
from ._transport import Transport

if TYPE_CHECKING:
    import boto3


def boto3_session(
    server: str | None = None,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    *,
    region_name: str | None = None,
    models: Sequence[str] | None = None,
    duration_s: int | None = None,
    refresh_margin_s: float = 300,
    transport: Transport | None = None,
) -> boto3.Session:
    """A boto3 Session backed by botocore refreshable credentials from `AgentCredentials`.

    Clients made from it (`session.client("bedrock-runtime")`) keep working across
    refreshes; nothing is fetched until the first AWS call, or the first client made
    without a region. Arguments as for `AgentCredentials`; `region_name` as for boto3
    (default: the usual AWS config chain, else the broker's home region).

    Raises:
        ConfigError: no token or server, or an unsafe token file. Broker refusals
            (TokenRevoked, ...) surface from the AWS call that needed fresh credentials.
    """
    source = AgentCredentials(
        server,
        token,
        token_file,
        refresh_margin_s=refresh_margin_s,
        models=models,
        duration_s=duration_s,
        transport=transport,
    )
    # boto3 takes ~0.3 s to import; the CLI never needs it, so load it only here.
    from ._boto import session_for  # noqa: PLC0415

    return session_for(source, region_name=region_name)
