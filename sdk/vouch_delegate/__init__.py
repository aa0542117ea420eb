"""Agent SDK and CLI for the Vouch delegation broker.

    import vouch_delegate

    session = vouch_delegate.boto3_session(token_file="~/.config/vouch/agent.token")
    bedrock = session.client("bedrock-runtime", region_name="us-east-1")

Everything public is exported here; modules starting with an underscore are private.
"""

from ._client import BrokerClient
from ._credentials import AgentCredentials, AwsCredentials
from ._delegation_request import request_delegation
from ._errors import (
    AssertionRejected,
    BrokerUnavailable,
    ChallengeInvalid,
    ConfigError,
    Conflict,
    DelegationDenied,
    DelegationExpired,
    GrantInvalid,
    GrantMismatch,
    InvalidRequest,
    InvalidResponse,
    InviteInvalid,
    KeyFlagged,
    NetworkError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PolicyDenied,
    RateLimited,
    RevocationUnconfirmed,
    StoreUnavailable,
    StsRejected,
    StsUnavailable,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    Unauthenticated,
    VouchError,
)
from ._session import boto3_session
from ._transport import Transport
from ._version import __version__

__all__ = [
    "AgentCredentials",
    "AssertionRejected",
    "AwsCredentials",
    "BrokerClient",
    "BrokerUnavailable",
    "ChallengeInvalid",
    "ConfigError",
    "Conflict",
    "DelegationDenied",
    "DelegationExpired",
    "GrantInvalid",
    "GrantMismatch",
    "InvalidRequest",
    "InvalidResponse",
    "InviteInvalid",
    "KeyFlagged",
    "NetworkError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PolicyDenied",
    "RateLimited",
    "RevocationUnconfirmed",
    "StoreUnavailable",
    "StsRejected",
    "StsUnavailable",
    "TokenExpired",
    "TokenInvalid",
    "TokenRevoked",
    "Transport",
    "Unauthenticated",
    "VouchError",
    "__version__",
    "boto3_session",
    "request_delegation",
]
