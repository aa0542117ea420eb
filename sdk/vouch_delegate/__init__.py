"""Agent SDK and CLI for the Vouch delegation broker.

    import vouch_delegate

    session = vouch_delegate.boto3_session(token_file="~/.config/vouch/agent.token")
    bedrock = session.client("bedrock-runtime", region_name="us-east-1")

    mine = vouch_delegate.boto3_session()     # no token: the signed-in person's own (vouch login)

Everything public is exported here; modules starting with an underscore are private.
"""

from ._agent_key import AgentKey
from ._client import BrokerClient
from ._credentials import AgentCredentials, AwsCredentials, PersonCredentials
from ._delegation_request import request_delegation
from ._errors import (
    AssertionRejected,
    BrokerUnavailable,
    BudgetExceeded,
    ChallengeInvalid,
    ConfigError,
    Conflict,
    DelegationDenied,
    DelegationExpired,
    DpopProofInvalid,
    GrantInvalid,
    GrantMismatch,
    InvalidRequest,
    InvalidResponse,
    InviteInvalid,
    KeyFlagged,
    NetworkError,
    NotFound,
    NotSignedIn,
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
    "AgentKey",
    "AssertionRejected",
    "AwsCredentials",
    "BrokerClient",
    "BrokerUnavailable",
    "BudgetExceeded",
    "ChallengeInvalid",
    "ConfigError",
    "Conflict",
    "DelegationDenied",
    "DelegationExpired",
    "DpopProofInvalid",
    "GrantInvalid",
    "GrantMismatch",
    "InvalidRequest",
    "InvalidResponse",
    "InviteInvalid",
    "KeyFlagged",
    "NetworkError",
    "NotFound",
    "NotSignedIn",
    "PayloadTooLarge",
    "PermissionDenied",
    "PersonCredentials",
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
