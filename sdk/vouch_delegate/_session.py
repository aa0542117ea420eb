"""`boto3_session`: a boto3 Session whose credentials come from, and follow, an agent token,
or without one, the signed-in person's own session."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._agent_key import AgentKey
from ._credentials import AgentCredentials, PersonCredentials
from ._token import TOKEN_ENV, TOKEN_FILE_ENV
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
    key: AgentKey | None = None,
    key_file: str | os.PathLike[str] | None = None,
) -> boto3.Session:
    """A boto3 Session backed by botocore refreshable credentials from `AgentCredentials`,
    or, with no token at all (no argument, no VOUCH_AGENT_TOKEN or VOUCH_AGENT_TOKEN_FILE),
    from `PersonCredentials`: the signed-in person's own, for notebooks and scripts a
    person runs after `vouch login`.

    Clients made from it (`session.client("bedrock-runtime")`) keep working across
    refreshes; nothing is fetched until the first AWS call, or the first client made
    without a region. Arguments as for `AgentCredentials` (`key` / `key_file`: the agent
    key of a bound token, which signs a DPoP proof per exchange); `region_name` as for boto3
    (default: the usual AWS config chain, else the broker's home region).

    Raises:
        ConfigError: no server, or an unsafe token or session file. NotSignedIn: no token
            and no saved session. Broker refusals (TokenRevoked, ...) and an ended session
            surface from the AWS call that needed fresh credentials.
    """
    source: AgentCredentials
    if token or token_file or os.environ.get(TOKEN_ENV) or os.environ.get(TOKEN_FILE_ENV):
        source = AgentCredentials(
            server,
            token,
            token_file,
            refresh_margin_s=refresh_margin_s,
            models=models,
            duration_s=duration_s,
            transport=transport,
            key=key,
            key_file=key_file,
        )
    else:
        source = PersonCredentials(
            server,
            refresh_margin_s=refresh_margin_s,
            models=models,
            duration_s=duration_s,
            transport=transport,
        )
    # boto3 takes ~0.3 s to import; the CLI never needs it, so load it only here.
    from ._boto import session_for  # noqa: PLC0415

    return session_for(source, region_name=region_name)
